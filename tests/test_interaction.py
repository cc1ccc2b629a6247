"""Tests for the interaction environment (HARNESS §2) beyond what etcd's scripts show.

The published scripts (tests/test_conformance.py) cover the common paths; these cases
pin down the edges a generated scenario can reach: error texts, the NONE mute switch,
indentation, harness failures, and the snapshot history.
"""

from __future__ import annotations

import pytest

from raftcore.errors import ConfigError, RaftPanic
from raftcore.raftpb.types import Message, MessageType
from raftcore.rafttest.datadriven import HarnessError, parse_text
from raftcore.rafttest.interaction import (
    CommandError,
    InteractionEnv,
    RedirectLogger,
    handle,
    make_handler,
)
from raftcore.rafttest.interaction.env import parse_bool_go, parse_uint_go
from raftcore.rafttest.interaction.logger import DEBUG, FATAL, INFO, NONE, level_from_name
from raftcore.rafttest.interaction.messages import split_msgs


def check(script: str, env: InteractionEnv | None = None) -> InteractionEnv:
    """Run ``script`` (datadriven text) and assert every output matches its block."""
    env = env if env is not None else InteractionEnv()
    for d in parse_text(script):
        actual = handle(env, d)
        if actual and not actual.endswith("\n"):
            actual += "\n"
        assert actual == d.expected, f"{d.pos}: {d.cmd}"
    return env


def run(env: InteractionEnv, line: str, input: str = "") -> str:
    (d,) = parse_text(f"{line}\n{input}\n----\n" if input else f"{line}\n----\n")
    return handle(env, d)


# -- the logger (§2.2) ----------------------------------------------------------------------


class Boom:
    def __str__(self) -> str:
        raise AssertionError("formatted although the level is off")


def test_logger_filters_by_level_without_formatting() -> None:
    log = RedirectLogger(INFO)
    log.debug("%s", Boom())
    log.info("%x became follower at term %d", 10, 3)
    log.warning("w")
    log.error("e")
    assert log.text() == "INFO a became follower at term 3\nWARN w\nERROR e\n"


def test_logger_line_feed_rule() -> None:
    log = RedirectLogger(DEBUG)
    log.info("already\n")
    log.info("")
    assert log.text() == "INFO already\nINFO "


def test_logger_message_without_args_is_verbatim() -> None:
    log = RedirectLogger(DEBUG)
    log.error("100% literal")
    assert log.text() == "ERROR 100% literal\n"


def test_none_mutes_everything() -> None:
    log = RedirectLogger(NONE)
    log.error("e")
    log.write("harness text")
    assert log.is_empty()


def test_panic_logs_fatal_then_raises() -> None:
    log = RedirectLogger(FATAL)
    with pytest.raises(RaftPanic, match=r"^bad 7$"):
        log.panic("bad %d", 7)
    assert log.text() == "FATAL bad 7\n"


@pytest.mark.parametrize(
    ("name", "level"),
    [("debug", 0), ("Info", 1), ("WARN", 2), ("error", 3), ("fAtAl", 4), ("none", 5)],
)
def test_level_names(name: str, level: int) -> None:
    assert level_from_name(name) == level


@pytest.mark.parametrize("name", ["warning", "", "trace"])
def test_unknown_level_names(name: str) -> None:
    assert level_from_name(name) is None


# -- indentation ----------------------------------------------------------------------------


def test_with_indent_adds_missing_line_feed_and_strips_cr() -> None:
    env = InteractionEnv()
    env.output.write("head\n")
    env.with_indent(lambda: env.output.write("a\r\nb"))
    assert env.output.text() == "head\n  a\n  b\n"


def test_with_indent_flushes_before_an_error_propagates() -> None:
    env = InteractionEnv()

    def f() -> None:
        env.output.write("partial\n")
        raise CommandError("oops")

    with pytest.raises(CommandError):
        env.with_indent(f)
    env.output.write("after")
    assert env.output.text() == "  partial\nafter"


# -- dispatch (§2.3) ------------------------------------------------------------------------


def test_dispatch_basics() -> None:
    check(
        """
frobnicate 1
----
unknown command

_breakpoint
----
ok

log-level verbose
----
log levels must be either of [DEBUG INFO WARN ERROR FATAL NONE]

log-level none
----
ok

add-nodes 1 voters=(1) index=1
----
index must be specified as > 1 due to bootstrap

raft-state
----
ok
"""
    )


def test_make_handler_gives_a_fresh_environment() -> None:
    (add,) = parse_text("add-nodes 1\n----\n")
    (state,) = parse_text("raft-state\n----\n")
    h1, h2 = make_handler(), make_handler()
    h1(add)
    assert h1(state).startswith("1: StateFollower")
    assert h2(state) == "ok"


# -- commands -------------------------------------------------------------------------------


def test_add_nodes_options_and_errors() -> None:
    check(
        """
log-level info
----
ok

add-nodes 1 read-only=bogus
----
invalid read-only option "bogus"

add-nodes 1 prevote unknown=1
----
INFO 1 switched to configuration voters=()
INFO 1 became follower at term 0
INFO newRaft 1 [peers: [], term: 0, commit: 0, applied: 0, lastindex: 0, lastterm: 0]

raft-log 1
----
log is empty: first index=1, last index=0

add-nodes 1 voters=(2, 3) learners=(4) index=5
----
INFO 2 switched to configuration voters=(2 3) learners=(4)
INFO 2 became follower at term 0
INFO newRaft 2 [peers: [2,3], term: 0, commit: 5, applied: 5, lastindex: 5, lastterm: 1]

raft-log 2
----
log is empty: first index=6, last index=5

raft-state
----
1: StateFollower (Non-Voter) Term:0 Lead:0
2: StateFollower (Voter) Term:0 Lead:0
"""
    )


def test_ids_print_decimal_in_raft_state_and_hex_in_logs() -> None:
    env = InteractionEnv()
    run(env, "log-level none")
    run(env, "add-nodes 11")
    run(env, "log-level info")
    assert run(env, "raft-state").splitlines()[-1] == "11: StateFollower (Non-Voter) Term:0 Lead:0"
    assert run(env, "add-nodes 1").splitlines()[0] == "INFO c switched to configuration voters=()"


def test_empty_queues() -> None:
    check(
        """
log-level none
----
ok

add-nodes 2
----
ok

log-level debug
----
ok

deliver-msgs 1 drop=2
----
no messages

process-append-thread 1
----
no append work to perform

process-apply-thread 1 2
----
> 1 processing apply thread
  no apply work to perform
> 2 processing apply thread
  no apply work to perform

process-ready
----
ok

status 1
----
ok
"""
    )


def test_single_node_and_stabilize_level_is_restored() -> None:
    check(
        """
log-level none
----
ok

add-nodes 1 voters=(1) index=2
----
ok

log-level info
----
ok

campaign 1
----
INFO 1 is starting a new election at term 0
INFO 1 became candidate at term 1

stabilize log-level=none
----
ok

raft-log 1
----
1/3 EntryNormal ""

raft-state
----
1: StateLeader (Voter) Term:1 Lead:1

status 1
----
1: StateReplicate match=3 next=4

stabilize log-level=bogus
----
log levels must be either of [DEBUG INFO WARN ERROR FATAL NONE]

propose 1 "quoted"
----
ok

stabilize log-level=error
----
> 1 handling Ready
  Ready MustSync=true:
  Entries:
  1/4 EntryNormal "\\"quoted\\""
> 1 handling Ready
  Ready MustSync=false:
  HardState Term:1 Vote:1 Commit:4
  CommittedEntries:
  1/4 EntryNormal "\\"quoted\\""
"""
    )


def test_errors_returned_by_commands() -> None:
    check(
        """
log-level none
----
ok

add-nodes 1 voters=(1) index=3
----
ok

compact 1 x
----
strconv.ParseUint: parsing "x": invalid syntax

compact 1 3
----
requested index is unavailable due to compaction

report-unreachable 1
----
must specify exactly two node indexes: node on which to report, and reported node

propose 1 nope
----
raft proposal dropped

propose-conf-change 1 transition=sideways
----
unknown transition sideways

propose-conf-change 1 color=red
v2
----
unknown command color

propose-conf-change 1 v1=maybe
v2
----
strconv.ParseBool: parsing "maybe": invalid syntax

propose-conf-change 1 v1=true
v2 v3
----
v1 conf change can only have one operation and no transition

propose-conf-change 1 v1=true transition=auto
v2
----
raft proposal dropped

propose-conf-change 1
x
----
unknown token x

propose-conf-change 1
q2
----
unknown input: q2
"""
    )


def test_error_follows_output_without_line_feed() -> None:
    env = InteractionEnv()
    run(env, "log-level none")
    run(env, "add-nodes 1 voters=(1) index=2")
    run(env, "log-level info")
    assert (
        run(env, "propose 1 x")
        == "INFO 1 no leader at term 0; dropping proposal\nraft proposal dropped"
    )


def test_send_snapshot_and_drop() -> None:
    check(
        """
log-level none
----
ok

add-nodes 2 voters=(1,2) index=4
----
ok

log-level debug
----
ok

send-snapshot 1 2
----
1->2 MsgSnap Term:0 Log:0/0
  Snapshot: Index:4 Term:1 ConfState:Voters:[1 2] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false

send-snapshot 2 7
----
2->7 MsgSnap Term:0 Log:0/0
  Snapshot: Index:4 Term:1 ConfState:Voters:[1 2] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false

deliver-msgs drop=(7, 2)
----
dropped: 2->7 MsgSnap Term:0 Log:0/0
  Snapshot: Index:4 Term:1 ConfState:Voters:[1 2] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false
dropped: 1->2 MsgSnap Term:0 Log:0/0
  Snapshot: Index:4 Term:1 ConfState:Voters:[1 2] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false
"""
    )


def test_snapshots_come_from_applied_history() -> None:
    env = check(
        """
log-level none
----
ok

add-nodes 3 voters=(1,2,3) index=2
----
ok

campaign 1
----
ok

stabilize
----
ok

propose 1 foo
----
ok

propose 1 bar
----
ok

stabilize
----
ok

log-level debug
----
ok

send-snapshot 2 3
----
2->3 MsgSnap Term:1 Log:0/0
  Snapshot: Index:5 Term:1 ConfState:Voters:[1 2 3] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false
"""
    )
    history = env.nodes[1].history
    assert [s.metadata.index for s in history] == [2, 3, 4, 5]
    # The appender state machine: the data of every applied normal entry, in order.
    assert history[-1].data == b"foobar"
    assert env.nodes[1].storage.snapshot() is history[-1]


def test_drop_keeps_local_messages() -> None:
    env = InteractionEnv()
    run(env, "log-level none")
    run(env, "add-nodes 1")
    run(env, "log-level debug")
    local = Message(type=MessageType.MsgAppResp, from_=1, to=1, term=1)
    thread = Message(type=MessageType.MsgStorageAppendResp, from_=2**64 - 1, to=1)
    env.messages = [local, thread]
    assert run(env, "deliver-msgs drop=1") == "no messages\n"
    assert env.messages == [local, thread]


def test_split_msgs_keeps_order() -> None:
    ms = [Message(type=MessageType.MsgApp, to=to, index=i) for i, to in enumerate([1, 2, 1, 3, 1])]
    sel, rest = split_msgs(ms, 1, None, drop=False)
    assert [m.index for m in sel] == [0, 2, 4]
    assert [m.index for m in rest] == [1, 3]
    sel, rest = split_msgs(ms, 1, MessageType.MsgHeartbeat, drop=False)
    assert sel == [] and rest == ms


def test_async_storage_threads() -> None:
    env = InteractionEnv()
    run(env, "log-level none")
    run(env, "add-nodes 1 voters=(1) index=2 async-storage-writes=true")
    run(env, "campaign 1")
    run(env, "log-level debug")
    rd = run(env, "process-ready 1")
    assert "1->AppendThread MsgStorageAppend" in rd
    assert not env.messages and len(env.nodes[0].append_work) == 1
    out = run(env, "process-append-thread 1")
    assert out.startswith("Processing:\n1->AppendThread MsgStorageAppend Term:1 Log:0/0")
    assert "\nResponses:\n1->1 MsgVoteResp Term:1 Log:0/0\n" in out
    assert not env.nodes[0].append_work and env.messages
    run(env, "log-level none")
    assert run(env, "stabilize") == "ok"
    assert run(env, "raft-state") == "ok"
    run(env, "log-level info")
    assert run(env, "raft-state") == "1: StateLeader (Voter) Term:1 Lead:1\n"


# -- harness failures (never output) ---------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "campaign",
        "campaign 2",
        "campaign x",
        "propose 1",
        "propose 1 a b",
        "propose 1 a=b",
        "deliver-msgs 1 drop=1",
        "deliver-msgs type=MsgBogus",
        "add-nodes 1 content=foo",
        "add-nodes 1 voters=(x)",
        "add-nodes 1 prevote=maybe",
        "set-randomized-election-timeout 1 timeout=0",
        "set-randomized-election-timeout 1",
        "transfer-leadership from=1 to=3",
        "transfer-leadership from=1",
        "send-snapshot 1",
        "compact 1",
        "log-level",
        "stabilize 3",
    ],
)
def test_harness_failures(line: str) -> None:
    env = InteractionEnv()
    run(env, "log-level none")
    run(env, "add-nodes 1 voters=(1) index=2")
    with pytest.raises(HarnessError):
        run(env, line)


def test_delivering_to_a_missing_node_is_a_harness_failure() -> None:
    env = InteractionEnv()
    run(env, "log-level none")
    run(env, "add-nodes 1 voters=(1) index=2")
    run(env, "send-snapshot 1 5")
    with pytest.raises(HarnessError):
        run(env, "deliver-msgs 5")


def test_v1_change_without_operation_is_a_harness_failure() -> None:
    env = InteractionEnv()
    run(env, "log-level none")
    run(env, "add-nodes 1 voters=(1) index=2")
    with pytest.raises(HarnessError):
        run(env, "propose-conf-change 1 v1=true")


def test_invalid_config_aborts() -> None:
    env = InteractionEnv()
    run(env, "log-level none")
    with pytest.raises(ConfigError):
        run(env, "add-nodes 1 voters=(1) index=2 read-only=lease-based")


def test_compacting_past_the_log_panics() -> None:
    env = InteractionEnv()
    run(env, "log-level none")
    run(env, "add-nodes 1 voters=(1) index=2")
    with pytest.raises(RaftPanic):
        run(env, "compact 1 9")


# -- Go's strconv error texts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "text"),
    [
        ("", 'strconv.ParseUint: parsing "": invalid syntax'),
        ("+1", 'strconv.ParseUint: parsing "+1": invalid syntax'),
        (
            "x99999999999999999999",
            'strconv.ParseUint: parsing "x99999999999999999999": invalid syntax',
        ),
        (
            "18446744073709551616",
            'strconv.ParseUint: parsing "18446744073709551616": value out of range',
        ),
        (
            "99999999999999999999x",
            'strconv.ParseUint: parsing "99999999999999999999x": value out of range',
        ),
        ('"1"', 'strconv.ParseUint: parsing "\\"1\\"": invalid syntax'),
    ],
)
def test_parse_uint_go_errors(s: str, text: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_uint_go(s)
    assert str(info.value) == text


def test_parse_uint_go_values() -> None:
    assert parse_uint_go("0") == 0
    assert parse_uint_go("18446744073709551615") == 2**64 - 1


def test_parse_bool_go() -> None:
    assert parse_bool_go("T") is True
    assert parse_bool_go("0") is False
    with pytest.raises(CommandError) as info:
        parse_bool_go("yes")
    assert str(info.value) == 'strconv.ParseBool: parsing "yes": invalid syntax'
