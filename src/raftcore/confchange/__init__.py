"""Membership changes: validating and applying simple and joint-consensus changes to a
tracker's configuration, and rebuilding a configuration from a ConfState."""

from raftcore.confchange.changer import Changer, describe
from raftcore.confchange.restore import restore, to_conf_change_single

__all__ = ["Changer", "describe", "restore", "to_conf_change_single"]
