"""Tests of mediamill.engines."""
