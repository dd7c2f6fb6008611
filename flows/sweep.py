"""Deployment entry point for the scheduled ``sweep`` flow (see prefect.yaml)."""

from mediamill.flows import sweep

__all__ = ["sweep"]
