"""Tests of mediamill.generate."""
