"""Tests of mediamill.media."""
