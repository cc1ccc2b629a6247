"""What a leader tracks about its followers: replication progress, in-flight appends,
the active membership configuration and election votes."""

from raftcore.tracker.inflights import Inflights
from raftcore.tracker.progress import Progress, ProgressMap
from raftcore.tracker.state import StateType
from raftcore.tracker.tracker import MatchAckIndexer, ProgressTracker, TrackerConfig

__all__ = [
    "Inflights",
    "MatchAckIndexer",
    "Progress",
    "ProgressMap",
    "ProgressTracker",
    "StateType",
    "TrackerConfig",
]
