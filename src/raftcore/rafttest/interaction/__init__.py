"""etcd's interaction test environment: scripted Raft groups driven through RawNode.

This is what runs the root ``testdata/*.txt`` conformance scripts (HARNESS §2). A fresh
:class:`InteractionEnv` holds the nodes, the simulated network and the output buffer of
one script file; :func:`make_handler` wraps one in the ``TestData -> str`` callable the
datadriven runner drives.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from raftcore.rafttest.datadriven import TestData
from raftcore.rafttest.interaction.env import (
    CommandError,
    InteractionEnv,
    InteractionOpts,
    Node,
)
from raftcore.rafttest.interaction.handler import COMMANDS, handle
from raftcore.rafttest.interaction.logger import RedirectLogger
from raftcore.rafttest.interaction.messages import Recipient
from raftcore.rafttest.interaction.storage import SnapOverrideStorage

__all__ = [
    "COMMANDS",
    "CommandError",
    "InteractionEnv",
    "InteractionOpts",
    "Node",
    "Recipient",
    "RedirectLogger",
    "SnapOverrideStorage",
    "handle",
    "make_handler",
]


def make_handler(options: InteractionOpts | None = None) -> Callable[[TestData], str]:
    """A directive handler over a new environment; call once per script file."""
    return partial(handle, InteractionEnv(options))
