"""Deployment entry point for the ``produce`` flow (see prefect.yaml).

Kept thin on purpose: the flow lives in ``mediamill.flows`` where it is tested.
"""

from mediamill.flows import produce

__all__ = ["produce"]
