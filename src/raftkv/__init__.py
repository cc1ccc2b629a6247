"""raftkv: a small replicated key-value service built on :mod:`raftcore`.

The package is an example application; the raft library itself (:mod:`raftcore`)
does not depend on it.
"""
