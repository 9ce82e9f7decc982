"""Spot policies: one interface (``base``) for the trace simulator and the live controller."""

from . import baselines, optimal, spotrain  # noqa: F401 - registers the policies
from .base import ON_DEMAND, REGISTRY, SPOT, WAIT, Decision, JobView, Placement, Policy, ZoneView, make

__all__ = [
    "ON_DEMAND",
    "REGISTRY",
    "SPOT",
    "WAIT",
    "Decision",
    "JobView",
    "Placement",
    "Policy",
    "ZoneView",
    "make",
]
