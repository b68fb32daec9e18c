# SPDX-License-Identifier: GPL-3.0-or-later
"""Our own logic around NetworkManager checkpoints: the busctl calls we build, the replies we
parse, and the checkpoint's lifecycle (runner recorded; real NM in
tests/netns/test_nm_checkpoint.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netcfg_txn.core.errors import CommandFailed
from netcfg_txn.core.model import SYSTEM, Deadline, Instant, Phase, StepResult, Txn, TxnId
from netcfg_txn.core.rollback import BouncePlan, StackPlan
from netcfg_txn.host.runner import Completed
from netcfg_txn.net import nmcheckpoint as nmc
from netcfg_txn.net.backends import ApplyConfig, Stack, get_backend
from netcfg_txn.net.livestate import LiveState
from netcfg_txn.net.stack import StackNetwork
from tests.fakeclock import FakeClock
from tests.fakes import FakeRunner

OWNER = ":1.7"
CP = "/org/freedesktop/NetworkManager/Checkpoint/3"
DEV1, DEV2, DEV3 = (f"/org/freedesktop/NetworkManager/Devices/{i}" for i in (1, 2, 3))


def txn(txn_id: str = "20260101T000000-abcdef", deadline_boottime: float = 130.0) -> Txn:
    now = Instant("b", 100.0, 1_700_000_100.0)
    d = Deadline("b", deadline_boottime, 1_700_000_000.0 + deadline_boottime)
    return Txn(TxnId(txn_id), Phase.OPEN, now, d, 30.0, SYSTEM, "")


def ok(argv: list[str], stdout: str) -> Completed:
    return Completed(tuple(argv), 0, stdout, "")


def reply(signature: str, *args: object) -> str:
    return json.dumps({"type": signature, "data": list(args)})


OBJECTS = {
    DEV1: {"org.freedesktop.NetworkManager.Device": {"Interface": {"type": "s", "data": "lo"}}},
    DEV2: {"org.freedesktop.NetworkManager.Device": {"Interface": {"type": "s", "data": "nct0"}}},
    DEV3: {"org.freedesktop.NetworkManager.Device": {"Interface": {"type": "s", "data": "nct1"}}},
    CP: {"org.freedesktop.NetworkManager.Checkpoint": {"Created": {"type": "x", "data": 5}}},
}


def nm_runner(**extra: Completed | CommandFailed) -> FakeRunner:
    """A NetworkManager that answers like the real one (replies as recorded from NM 1.42)."""
    outputs: dict[tuple[str, ...], Completed | CommandFailed] = {
        tuple(nmc.owner_argv()): ok(nmc.owner_argv(), reply("s", OWNER)),
        tuple(nmc.create_argv(OWNER)): ok(nmc.create_argv(OWNER), reply("o", CP)),
        tuple(nmc.rollback_argv(OWNER, CP)): ok(
            nmc.rollback_argv(OWNER, CP), reply("a{su}", {DEV1: 0, DEV2: 0, DEV3: 0})
        ),
        tuple(nmc.objects_argv(OWNER)): ok(
            nmc.objects_argv(OWNER), reply("a{oa{sa{sv}}}", OBJECTS)
        ),
    }
    for key, out in extra.items():
        outputs[tuple(getattr(nmc, f"{key}_argv")(OWNER, CP))] = out
    return FakeRunner(outputs)


def checkpoint(run: FakeRunner, tmp_path: Path) -> nmc.NmCheckpoint:
    return nmc.NmCheckpoint(run, tmp_path / "nm-checkpoint.json", FakeClock(100.0, boot_id="b"))


# ------------------------------------------------------------------------ calls and replies


def test_calls_are_typed_busctl_method_calls_to_the_owner() -> None:
    assert nmc.create_argv(OWNER) == [
        "busctl", "--system", "--json=short", "call", OWNER, "/org/freedesktop/NetworkManager",
        "org.freedesktop.NetworkManager", "CheckpointCreate", "aouu", "0", "0", "0",
    ]  # fmt: skip
    assert nmc.create_argv(OWNER, [DEV1, DEV2], 9)[-6:] == ["aouu", "2", DEV1, DEV2, "9", "0"]
    assert nmc.rollback_argv(OWNER, CP)[-3:] == ["CheckpointRollback", "o", CP]
    assert nmc.destroy_argv(OWNER, CP)[-3:] == ["CheckpointDestroy", "o", CP]
    assert nmc.adjust_argv(OWNER, CP, 48)[-4:] == [
        "CheckpointAdjustRollbackTimeout",
        "ou",
        CP,
        "48",
    ]
    assert nmc.owner_argv()[-3:] == ["GetNameOwner", "s", "org.freedesktop.NetworkManager"]


def test_replies_are_parsed_by_signature() -> None:
    assert nmc.parse_str('{"type":"o","data":["/x/1"]}', "o") == "/x/1"
    assert nmc.parse_reply('{"type":"x","data":11853422}', "x") == 11853422  # a property
    assert nmc.parse_rollback(reply("a{su}", {DEV1: 0, DEV3: 3})) == {DEV1: 0, DEV3: 3}
    assert nmc.parse_interfaces(reply("a{oa{sa{sv}}}", OBJECTS)) == {
        DEV1: "lo",
        DEV2: "nct0",
        DEV3: "nct1",
    }


@pytest.mark.parametrize(
    ("stdout", "signature"),
    [
        ("", "o"),
        ("Call failed", "o"),
        ('{"type":"s","data":["x"]}', "o"),  # another type
        ('{"type":"o"}', "o"),  # no data
        ('{"type":"o","data":[""]}', "o"),  # empty path
        ('{"type":"a{su}","data":[{"/d":"0"}]}', "a{su}"),  # a result that is not a number
        ('{"type":"a{su}","data":[[1]]}', "a{su}"),
    ],
)
def test_bad_replies_are_refused(stdout: str, signature: str) -> None:
    with pytest.raises(ValueError, match="busctl"):
        if signature == "a{su}":
            nmc.parse_rollback(stdout)
        else:
            nmc.parse_str(stdout, signature)


def test_nm_rolls_back_after_our_deadline_and_the_backstop() -> None:
    assert nmc.rollback_timeout_s(30.0, 15.0) == 30 + 15 + nmc.NM_MARGIN_S
    assert nmc.rollback_timeout_s(0.4, 0.0) == 31  # rounded up, never early
    assert nmc.rollback_timeout_s(-5.0, 0.0) >= 1  # 0 would mean "never"


def test_a_record_must_name_path_owner_and_transaction() -> None:
    cp = nmc.Checkpoint(CP, OWNER, "t1")
    assert nmc.Checkpoint.from_json(cp.to_json()) == cp
    for bad in ({}, {"path": CP, "owner": OWNER}, {**cp.to_json(), "txn": ""}, [1], None):
        with pytest.raises(ValueError, match="not a checkpoint record"):
            nmc.Checkpoint.from_json(bad)


# -------------------------------------------------------------------------------- lifecycle


def test_start_takes_a_checkpoint_that_arm_binds_and_times(tmp_path: Path) -> None:
    run = nm_runner()
    cp = checkpoint(run, tmp_path)
    cp.prepare()
    assert run.calls == [tuple(nmc.owner_argv()), tuple(nmc.create_argv(OWNER))]
    assert not cp.record.exists()  # nothing on disk until the transaction is
    assert cp.arm(txn(), 15.0)
    assert json.loads(cp.record.read_text()) == {"path": CP, "owner": OWNER, "txn": txn().id}
    assert run.calls[-1] == tuple(nmc.adjust_argv(OWNER, CP, 30 + 15 + 30))
    # extend: the same checkpoint, a new timeout; nothing new is created
    assert cp.arm(txn(deadline_boottime=400.0), 15.0)
    assert run.calls[-1] == tuple(nmc.adjust_argv(OWNER, CP, 300 + 15 + 30))
    assert sum(1 for c in run.calls if "CheckpointCreate" in c) == 1


def test_a_resumed_transaction_never_gets_a_new_checkpoint(tmp_path: Path) -> None:
    """After a restart of netcfg-txnd the live state may already be the changed one."""
    run = nm_runner()
    assert not checkpoint(run, tmp_path).arm(txn(), 15.0)
    assert run.calls == []


def test_a_checkpoint_whose_timeout_cannot_move_is_destroyed(tmp_path: Path) -> None:
    gone = CommandFailed(("busctl",), 1, "The name :1.7 was not provided by any .service files")
    run = nm_runner()
    run.outputs[tuple(nmc.adjust_argv(OWNER, CP, 30 + 15 + 30))] = gone
    cp = checkpoint(run, tmp_path)
    cp.prepare()
    assert not cp.arm(txn(), 15.0)
    assert run.calls[-1] == tuple(nmc.destroy_argv(OWNER, CP))
    assert not cp.record.exists()


def test_a_leftover_of_another_transaction_is_destroyed(tmp_path: Path) -> None:
    run = nm_runner()
    cp = checkpoint(run, tmp_path)
    cp.record.write_text(json.dumps({"path": "/old", "owner": ":1.2", "txn": "other"}))
    assert not cp.arm(txn(), 15.0)
    assert run.calls == [tuple(nmc.destroy_argv(":1.2", "/old"))]
    assert not cp.record.exists()


def test_commit_and_the_end_of_a_transaction_destroy_its_checkpoint(tmp_path: Path) -> None:
    run = nm_runner()
    cp = checkpoint(run, tmp_path)
    cp.prepare()
    cp.arm(txn(), 15.0)
    cp.disarm("another transaction")
    assert cp.record.exists()
    cp.before_commit(txn())
    assert run.calls[-1] == tuple(nmc.destroy_argv(OWNER, CP))
    assert not cp.record.exists()
    cp.disarm(txn().id)  # idempotent: nothing left to destroy
    assert run.calls[-1] == tuple(nmc.destroy_argv(OWNER, CP))


def test_rollback_names_the_interfaces_the_checkpoint_restored(tmp_path: Path) -> None:
    run = nm_runner(
        rollback=ok(nmc.rollback_argv(OWNER, CP), reply("a{su}", {DEV1: 0, DEV2: 1, DEV3: 0}))
    )
    cp = checkpoint(run, tmp_path)
    cp.prepare()
    cp.arm(txn(), 15.0)
    done = cp.rollback()
    assert done == ([StepResult("checkpoint", CP, True)], {"lo", "nct1"})  # nct0: no device
    assert not cp.record.exists()  # NM destroys a checkpoint it rolled back
    assert cp.rollback() is None


def test_rollback_without_a_usable_checkpoint_takes_the_usual_path(tmp_path: Path) -> None:
    gone = CommandFailed(("busctl",), 1, "The name :1.7 was not provided by any .service files")
    run = nm_runner(rollback=gone)
    cp = checkpoint(run, tmp_path)
    assert cp.rollback() is None  # no record
    cp.prepare()
    cp.arm(txn(), 15.0)
    assert cp.rollback() is None  # NetworkManager restarted: not a failed step
    assert not cp.record.exists()


def test_without_networkmanager_nothing_is_prepared(tmp_path: Path) -> None:
    run = FakeRunner({tuple(nmc.owner_argv()): CommandFailed(("busctl",), 1, "no owner")})
    cp = checkpoint(run, tmp_path)
    cp.prepare()
    assert not cp.arm(txn(), 15.0)
    assert not cp.record.exists()


# ------------------------------------------------------------------ in the rollback sequence


class FakeCheckpoint(nmc.NmCheckpoint):
    def __init__(self, restored: set[str] | None) -> None:
        self.restored = restored
        self.prepared = 0
        self.discarded = False

    def prepare(self) -> None:
        self.prepared += 1

    def discard(self) -> None:
        self.discarded = True

    def rollback(self) -> tuple[list[StepResult], set[str]] | None:
        if self.restored is None:
            return None
        return [StepResult("checkpoint", CP, True)], self.restored


def nm_network(cp: FakeCheckpoint) -> tuple[StackNetwork, FakeRunner]:
    settings = ApplyConfig()
    run = FakeRunner()
    net = StackNetwork(get_backend(Stack.NETWORKMANAGER, settings), settings, runner=run)
    net.checkpoint = cp
    return net, run


PLAN = StackPlan(
    "networkmanager",
    BouncePlan(down=("nct1", "nctbr1"), delete=(), up=("nct1",), unattributed=(), reload=True),
)


def before_files(net: StackNetwork) -> list[StepResult]:
    return [*net.down(PLAN), *net.delete_created_links(PLAN)]


def after_files(net: StackNetwork) -> list[StepResult]:
    return [
        *net.reload(PLAN),
        *net.up(PLAN),
        *net.restore_routes(PLAN, None),
        *net.verify(PLAN, None),
        *net.run_hook(PLAN),
    ]


def test_links_the_checkpoint_restored_are_neither_taken_down_nor_brought_up() -> None:
    cp = FakeCheckpoint({"nct0", "nct1"})  # nctbr1 is new since start: not in the checkpoint
    net, run = nm_network(cp)
    before = before_files(net)
    after = after_files(net)
    assert [(r.action, r.target) for r in before] == [("checkpoint", CP), ("down", "nctbr1")]
    assert [(r.action, r.target) for r in after] == [("reload", "nmcli connection reload")]
    assert run.effects() == [
        ("nmcli", "device", "disconnect", "nctbr1"),
        ("nmcli", "connection", "reload"),
    ]


def test_without_a_checkpoint_the_rollback_is_the_usual_down_and_up() -> None:
    net, run = nm_network(FakeCheckpoint(None))
    before_files(net)
    after_files(net)
    assert run.effects() == [
        ("nmcli", "device", "disconnect", "nct1"),
        ("nmcli", "device", "disconnect", "nctbr1"),
        ("nmcli", "connection", "reload"),
        ("nmcli", "connection", "up", "ifname", "nct1"),
    ]


def test_a_readdress_takes_the_usual_path_and_discards_the_checkpoint() -> None:
    # NM would re-activate the bridge to put its address back, detaching its ports
    cp = FakeCheckpoint({"nct0", "nct1", "nctbr0"})
    net, run = nm_network(cp)
    plan = StackPlan(
        "networkmanager",
        BouncePlan(("nct1",), (), ("nct1",), (), reload=True, readdress=("nctbr0",)),
    )
    steps = net.down(plan)
    assert cp.discarded and [(r.action, r.target) for r in steps] == [("down", "nct1")]
    net.reload(plan)
    net.up(plan)
    assert ("nmcli", "connection", "up", "ifname", "nct1") in run.effects()


def test_the_checkpoint_is_taken_when_the_start_captures_the_live_state() -> None:
    cp = FakeCheckpoint(None)
    net, _ = nm_network(cp)
    net._links = lambda: _NoLinks()  # type: ignore[assignment,return-value]
    net.capture()
    assert cp.prepared == 1


class _NoLinks:
    def __enter__(self) -> _NoLinks:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def capture(self) -> LiveState:
        return LiveState((), (), (), ())
