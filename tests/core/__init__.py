"""Tests of mediamill.core."""
