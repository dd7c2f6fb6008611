"""Tests of mediamill.serve."""
