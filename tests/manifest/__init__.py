"""Tests of mediamill.manifest."""
