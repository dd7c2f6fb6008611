"""Tests of mediamill.flows."""
