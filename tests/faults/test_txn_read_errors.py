# SPDX-License-Identifier: GPL-3.0-or-later
"""Read errors on the transaction record and fd exhaustion at the deadline.

- EMFILE/EIO on every open of ``txn.json`` (strace fault injection on the running daemon) while a
  transaction is open: callers get a clear error, nothing is rolled back early; once the reads
  work again the deadline fires on time. On a654695 the first failed read counted as corruption
  and the next locked request rolled the transaction back at once.
- RLIMIT_NOFILE used up right at the deadline (the daemon's limit lowered to its lowest free fd):
  the fd reserve lets the rollback through on time. On a654695 ``expire()`` hit EMFILE and
  ``rearm()`` dropped the timer.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from netcfg_txn.core.errors import NetcfgTxnError
from tests.daemon.harness import Daemon
from tests.faults.conftest import (
    MSG_DEADLINE_RETRY,
    Journal,
    assert_rolled_back_at_deadline,
    edit,
    need,
    start_txn,
)


def _traced(pid: int) -> bool:
    """True once every thread of ``pid`` is under ptrace."""
    tasks = os.listdir(f"/proc/{pid}/task")
    for tid in tasks:
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            if "TracerPid:\t0\n" in f.read():
                return False
    return True


@contextlib.contextmanager
def injected(pid: int, path: str, error: str) -> Iterator[None]:
    """Every openat() of ``path`` in every thread of ``pid`` fails with ``error`` meanwhile."""
    # fmt: off
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-p", str(pid), "-P", path,
         "-e", "trace=openat", "-e", f"inject=openat:error={error}"],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    # fmt: on
    try:
        end = time.monotonic() + 10
        while not _traced(pid):
            assert tracer.poll() is None, tracer.stderr.read() if tracer.stderr else ""
            assert time.monotonic() < end, "strace did not attach"
            time.sleep(0.02)
        yield
    finally:
        tracer.terminate()  # strace detaches cleanly on SIGTERM
        tracer.wait(10)
        end = time.monotonic() + 10
        while _traced(pid) and time.monotonic() < end:
            time.sleep(0.02)


@pytest.mark.parametrize("error", ["EMFILE", "EIO"])
def test_txn_json_read_errors_are_not_corruption(
    spawn: Callable[..., Daemon], journal: Journal, error: str
) -> None:
    need("strace", "unshare")
    d = spawn(wrapper=journal.wrapper())
    d.start(timeout_s=30)
    before = d.files()
    txn_id, deadline = start_txn(d, "8s")
    edit(d)
    edited = d.files()
    record = (d.state / "txn.json").read_bytes()
    with injected(d.pid, str(d.state / "txn.json"), error):
        # Straight to the daemon (the CLI's status would fall back to reading the state offline).
        for path in ("/v1/status", "/v1/diff", "/v1/plan", "/v1/status"):
            with pytest.raises(NetcfgTxnError) as err:
                d.api("GET", path)
            assert err.value.code == "unavailable", (path, err.value.to_json())
            assert "cannot read the transaction record" in err.value.message
            assert "not treated as corruption" in err.value.message
        assert time.time() < deadline - 0.5, "the checks took too long to mean anything"
        # Nothing was rolled back: files as edited, the record as written, no history.
        assert d.files() == edited
        assert (d.state / "txn.json").read_bytes() == record
        assert d.history() == []
    st = d.cli("status")
    assert st.rc == 0 and st.doc["state"] == "open", st.err
    assert_rolled_back_at_deadline(d, journal, f"txn.json-{error}", txn_id, deadline, before)
    assert not [m for m in journal.msgs if "record is corrupt" in m.get("MESSAGE", "")]
    # The failed re-arms after the refused requests kept the timer and said so.
    assert "cannot re-arm the timer" in journal.wait_for(MESSAGE_ID=MSG_DEADLINE_RETRY)["MESSAGE"]


def _lowest_free_fd(pid: int) -> int:
    used = {int(n) for n in os.listdir(f"/proc/{pid}/fd")}
    fd = 0
    while fd in used:
        fd += 1
    return fd


def test_fds_used_up_at_the_deadline(spawn: Callable[..., Daemon], journal: Journal) -> None:
    need("prlimit", "unshare")
    d = spawn(wrapper=journal.wrapper())
    d.start(timeout_s=30)
    before = d.files()
    txn_id, deadline = start_txn(d, "5s")
    edit(d)
    end = time.monotonic() + 10
    while time.time() < deadline - 1.0:  # the limit goes down just before the deadline
        assert time.monotonic() < end
        time.sleep(0.05)
    limit = _lowest_free_fd(d.pid)
    subprocess.run(["prlimit", f"--pid={d.pid}", f"--nofile={limit}:"], check=True)
    try:
        assert_rolled_back_at_deadline(d, journal, "nofile-at-deadline", txn_id, deadline, before,
                                       wait_s=8)  # fmt: skip
    finally:
        subprocess.run(["prlimit", f"--pid={d.pid}", "--nofile=1024:"], check=False)
