"""The consistency checker: finds drift between SQL and the vector index, repairs the safe kinds."""

from ragstore.consistency.checker import CheckResult, ConsistencyChecker, Finding, vector_drift
from ragstore.consistency.kinds import KINDS, Kind
from ragstore.consistency.repair import Repairer, RepairOutcome
from ragstore.consistency.reports import ReportStore

__all__ = [
    "KINDS",
    "CheckResult",
    "ConsistencyChecker",
    "Finding",
    "Kind",
    "RepairOutcome",
    "Repairer",
    "ReportStore",
    "vector_drift",
]
