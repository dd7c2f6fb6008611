"""Tests of mediamill.verify."""
