"""Conformance check for policy classes (`fastserve check-policy`): a reference engine, seeded
random workloads with shrinking, and the properties every policy must have. Pure Python, like
the rest of `policy`."""

from policy.conformance.engine import Violation
from policy.conformance.properties import PROPERTIES, PropertyResult, check_class

__all__ = ["PROPERTIES", "PropertyResult", "Violation", "check_class"]
