"""Tests of mediamill.deliver."""
