# SPDX-License-Identifier: GPL-3.0-or-later
"""The status cache is only reused while file watching covers every managed directory: with
inotify refused (strace injects EMFILE, as an exhausted ``fs.inotify.max_user_instances`` would),
the daemon says it will rescan, and it does: an edit shows in the very next status."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable

import pytest

from tests.daemon.conftest import CI
from tests.daemon.harness import Daemon

INJECT = [
    "strace", "-f", "-qq", "-o", "/dev/null",
    "-e", "trace=inotify_init,inotify_init1",
    "-e", "inject=inotify_init,inotify_init1:error=EMFILE",
]  # fmt: skip


def _edited(d: Daemon) -> list[str]:
    r = d.cli("status")
    assert r.rc == 0, r.err
    return list(r.doc["edited"])


def test_status_rescans_when_watching_is_impossible(spawn: Callable[..., Daemon]) -> None:
    if shutil.which("strace") is None:
        if CI:
            pytest.fail("needs strace (scripts/lib/bootstrap.sh installs it)")
        pytest.skip("needs strace (apt-get install strace)")
    d = spawn(wrapper=INJECT)
    assert "cannot watch managed directories" in d.log_text(), d.log_text()
    assert d.cli("start", "--timeout", "5m").rc == 0
    assert _edited(d) == []
    assert _edited(d) == []  # a second status, nothing changed in between: may come from a cache
    d.path("etc/network/interfaces.d/eth1").write_text("iface eth1 inet manual\n")
    assert _edited(d) == ["/etc/network/interfaces.d/eth1"]
    d.cli("rollback")


def test_status_sees_an_edit_with_watching(daemon: Daemon) -> None:
    """The same sequence with inotify working (the cache is invalidated by the watcher)."""
    assert "cannot watch" not in daemon.log_text()
    assert daemon.cli("start", "--timeout", "5m").rc == 0
    assert _edited(daemon) == []
    assert _edited(daemon) == []
    daemon.path("etc/network/interfaces.d/eth1").write_text("iface eth1 inet manual\n")
    # the watcher's event reaches the loop asynchronously: wait on the condition
    end = time.monotonic() + 10
    while _edited(daemon) != ["/etc/network/interfaces.d/eth1"]:
        assert time.monotonic() < end, daemon.log_text()
        time.sleep(0.05)
    daemon.cli("rollback")
