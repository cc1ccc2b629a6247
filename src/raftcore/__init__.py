"""raftcore: etcd's Raft consensus core, in Python.

The public API is re-exported here as the layers land.
"""

from raftcore import errors
from raftcore.logger import Logger, StdlibLogger

__all__ = ["Logger", "StdlibLogger", "errors"]
