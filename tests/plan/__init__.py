"""Tests of mediamill.plan."""
