"""Tests of mediamill.backends."""
