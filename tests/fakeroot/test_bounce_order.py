# SPDX-License-Identifier: GPL-3.0-or-later
"""The order of a live rollback, recorded: the changed interface goes down while its NEW config
is still on disk (ifdown needs it), the files are restored, then it comes up from the OLD
config. The engine and the ifupdown backend are real; only the commands are recorded (with the
file content each one would have read) and netlink is a static stand-in."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from netcfg_txn.core.model import Phase, Reason
from netcfg_txn.host.runner import Completed
from netcfg_txn.net.backends import ApplyConfig, Stack, get_backend
from netcfg_txn.net.livestate import LiveState
from netcfg_txn.net.stack import StackNetwork
from tests.fakeroot.conftest import ROOT_ACTOR, build

ETH1 = "/etc/network/interfaces.d/eth1"
OLD = "auto eth1\niface eth1 inet static\n    address 192.0.2.1/24\n"
NEW = "auto eth1\niface eth1 inet static\n    address 192.0.2.99/24\n"


class Recorder:
    """A Runner recording each command with the content of eth1's file at that moment."""

    def __init__(self, root: Path) -> None:
        self.file = root / ETH1.lstrip("/")
        self.calls: list[tuple[tuple[str, ...], str]] = []

    def __call__(
        self, argv: Sequence[str], *, timeout_s: float = 30.0, check: bool = True
    ) -> Completed:
        cmd = tuple(argv)
        if cmd[:2] != ("/bin/sh", "-c"):  # not the tool-presence checks
            self.calls.append((cmd, self.file.read_text()))
        return Completed(cmd, 0, "", "")


class StaticLinks:
    def __call__(self) -> StaticLinks:
        return self

    def __enter__(self) -> StaticLinks:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def names(self) -> frozenset[str]:
        return frozenset({"lo", "eth0", "eth1"})

    def capture(self) -> LiveState:
        return LiveState((), (), (), ())


def test_down_before_files_up_after_only_the_changed_interface(tmp_path: Path) -> None:
    env = build(tmp_path)
    env.write("/etc/network/interfaces", "auto lo\niface lo inet loopback\nsource interfaces.d/*\n")
    env.write("/etc/network/interfaces.d/eth0", "auto eth0\niface eth0 inet dhcp\n")
    env.write(ETH1, OLD)
    rec = Recorder(env.root)
    settings = ApplyConfig(backend="ifupdown")
    env.engine.adopt(
        env.engine.cfg,
        StackNetwork(
            get_backend(Stack.IFUPDOWN, settings),
            settings,
            runner=rec,
            links=StaticLinks(),  # type: ignore[arg-type]
        ),
    )
    env.engine.start(ROOT_ACTOR, timeout_s=60)
    env.write(ETH1, NEW)
    done = env.engine.rollback(ROOT_ACTOR, reason=Reason.MANUAL)
    assert done.phase is Phase.ROLLED_BACK, done.errors
    argvs = [c for c, _ in rec.calls]
    downs = [i for i, c in enumerate(argvs) if c[0] == "ifdown"]
    ups = [i for i, c in enumerate(argvs) if c[0] == "ifup"]
    assert len(downs) == 1 and len(ups) == 1, argvs
    assert downs[0] < ups[0], argvs
    assert argvs[downs[0]][-1] == "eth1" and argvs[ups[0]][-1] == "eth1", argvs  # not eth0
    assert rec.calls[downs[0]][1] == NEW  # ifdown ran while the new config was on disk
    assert rec.calls[ups[0]][1] == OLD  # ifup ran from the restored config
    assert env.path(ETH1).read_text() == OLD
    assert [r.action for r in done.results][:1] == ["down"]
