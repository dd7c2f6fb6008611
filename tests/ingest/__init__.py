"""Tests of mediamill.ingest."""
