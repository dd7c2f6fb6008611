"""Tests of mediamill.text."""
