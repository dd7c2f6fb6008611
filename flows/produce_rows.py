"""Deployment entry point for the ``produce-rows`` flow: one share of a big manifest's rows (see prefect.yaml).

Kept thin on purpose: the flow lives in ``mediamill.flows`` where it is tested.
"""

from mediamill.flows import produce_rows

__all__ = ["produce_rows"]
