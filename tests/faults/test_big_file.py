# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault tier: one file can never block a restore (the real daemon, the real CLI).

A 1 GiB sparse file dropped into a managed directory while a transaction is open used to make
every rollback fail (the archive read it whole: 2.1 GB peak RSS; planning then aborted before
any file was restored). Now, for the deadline, a manual rollback and boot-rollback: the rollback
runs on time, every other file is restored, the big file is deleted without being read, the
daemon's peak RSS stays small, and history and the journal say ``failed`` with the file and why.
A managed file that cannot be read (EIO) or that became a FIFO or a socket is likewise a
per-file error while the rest is restored.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.harness import Daemon, make
from tests.faults.bigfile_env import RSS_WRAPPER, in_mount_ns, peak_rss_mb
from tests.faults.conftest import Journal, need

MSG_FAILED = "d4510d873c7d42dcb01059d8acdbec9f"
IFD = "etc/network/interfaces.d"
HUGE = f"{IFD}/huge"
GIB = 1 << 30
RSS_LIMIT_MB = 100.0


@pytest.fixture
def daemon(tmp_path: Path, journal: Journal) -> Iterator[Daemon]:
    """The real daemon in a private mount namespace whose journal is ``journal`` (conftest)."""
    need("unshare", "nsenter")
    d = make(tmp_path / "d", wrapper=journal.wrapper())
    try:
        d.start(timeout_s=30)
        yield d
    finally:
        d.kill()


def start_txn(d: Daemon, timeout: str) -> tuple[str, float]:
    r = d.cli("start", "--timeout", timeout)
    assert r.rc == 0, f"start failed: {r.err}\n{d.log_text()}"
    t = r.doc["transaction"]
    return t["id"], float(t["deadline_wall_s"])


def edit(d: Daemon) -> None:
    """Change one managed file, delete one, add one (all must be undone)."""
    d.path(f"{IFD}/eth0").write_text("auto eth0\niface eth0 inet static\n")
    d.path(f"{IFD}/eth1").unlink()
    d.path(f"{IFD}/eth9").write_text("iface eth9 inet manual\n")


def drop_huge(d: Daemon) -> Path:
    p = d.path(HUGE)
    with open(p, "wb") as f:
        f.truncate(GIB)  # sparse: 1 GiB long, no disk used
    return p


def check_huge_outcome(d: Daemon, txn_id: str, reason: str, before: dict[str, bytes]) -> None:
    """Every other file restored, the big file deleted (never archived), history says why."""
    assert not d.path(HUGE).exists(), "the added 1 GiB file must be deleted"
    assert d.files() == before
    (h,) = [h for h in d.history() if h["txn"]["id"] == txn_id]
    t = h["txn"]
    assert (t["phase"], t["reason"]) == ("failed", reason), t
    (err,) = t["errors"]  # the one failure: the file could not be archived
    assert err.startswith(f"archive /{HUGE}: not archived: {GIB} bytes is over the per-file")
    assert {(r["action"], r["target"], r["ok"]) for r in t["results"]} >= {
        ("delete", f"/{HUGE}", True),
        ("rewrite", f"/{IFD}/eth0", True),
        ("recreate", f"/{IFD}/eth1", True),
        ("delete", f"/{IFD}/eth9", True),
    }
    (entry,) = [f for f in h["discarded"]["files"] if f["path"] == f"/{HUGE}"]
    assert entry["sha256"] == "" and "over the per-file limit" in entry["unarchived"]
    blobs = d.state / "blobs"
    assert sum(p.stat().st_size for p in blobs.iterdir()) < 1 << 20  # nothing big was stored


def check_journal(journal: Journal, txn_id: str, reason: str, needle: str) -> None:
    entry = journal.wait_for(MESSAGE_ID=MSG_FAILED, TXN_ID=txn_id)
    assert (entry["PHASE"], entry["REASON"]) == ("failed", reason), entry
    assert needle in entry["MESSAGE"] and entry["PRIORITY"] == "2", entry


def test_deadline_rollback_with_a_1gib_file(daemon: Daemon, journal: Journal) -> None:
    d = daemon
    before = d.files()
    txn_id, deadline = start_txn(d, "10s")
    rss_before = peak_rss_mb(d.pid)
    edit(d)
    drop_huge(d)
    st = d.cli("status")  # views must not fail on it either
    assert st.rc == 0, st.out + st.err
    assert f"/{HUGE}" in st.doc["edited"]
    d.wait_idle(max(0.0, deadline - time.time()) + 30)
    (h,) = [h for h in d.history() if h["txn"]["id"] == txn_id]
    latency = float(h["txn"]["ended_wall_s"]) - deadline
    rss_after = peak_rss_mb(d.pid)
    print(
        f"1 GiB file, deadline rollback: finished {latency * 1000:.0f} ms after the deadline; "
        f"daemon peak RSS {rss_before:.1f} MB before, {rss_after:.1f} MB after"
    )
    assert -0.05 <= latency < 1.0, f"rollback ended {latency:.2f}s after the deadline"
    assert rss_after < RSS_LIMIT_MB
    check_huge_outcome(d, txn_id, "timeout", before)
    check_journal(journal, txn_id, "timeout", f"/{HUGE}")
    assert d.running()  # and it keeps serving
    assert d.cli("status").doc["state"] == "idle"


def test_manual_rollback_with_a_1gib_file(daemon: Daemon, journal: Journal) -> None:
    d = daemon
    before = d.files()
    txn_id, _ = start_txn(d, "10m")
    edit(d)
    drop_huge(d)
    t0 = time.monotonic()
    r = d.cli("rollback")
    took = time.monotonic() - t0
    rss = peak_rss_mb(d.pid)
    print(f"1 GiB file, manual rollback: {took * 1000:.0f} ms (CLI round trip), "
          f"daemon peak RSS {rss:.1f} MB")  # fmt: skip
    assert r.rc == 1, r.out + r.err
    err = r.doc["error"]
    assert err["code"] == "failed" and f"/{HUGE}" in err["message"], err
    assert "state directory" not in err["message"]
    assert rss < RSS_LIMIT_MB
    check_huge_outcome(d, txn_id, "manual", before)
    check_journal(journal, txn_id, "manual", f"/{HUGE}")


def test_boot_rollback_with_a_1gib_file(daemon: Daemon, journal: Journal) -> None:
    d = daemon
    before = d.files()
    txn_id, _ = start_txn(d, "10m")
    edit(d)
    drop_huge(d)
    d.kill()  # a crash: boot-rollback runs offline, before networking
    wrapper = tmp_wrapper(d.base)
    argv = [*journal.wrapper(), sys.executable, str(wrapper), *d.cli_argv("boot-rollback")]
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    peak_kb = int(p.stderr.rsplit("PEAK_RSS_KB=", 1)[1].split()[0])
    print(f"1 GiB file, boot-rollback: {took * 1000:.0f} ms, peak RSS {peak_kb / 1024:.1f} MB")
    assert p.returncode == 1, p.stdout + p.stderr
    err = json.loads(p.stdout)["error"]
    assert f"/{HUGE}" in err["message"] and "state directory" not in err["message"], err
    assert peak_kb / 1024 < RSS_LIMIT_MB
    check_huge_outcome(d, txn_id, "boot", before)
    check_journal(journal, txn_id, "boot", f"/{HUGE}")


def tmp_wrapper(base: Path) -> Path:
    p = base / "peak_rss.py"
    p.write_text(RSS_WRAPPER)
    return p


def test_unreadable_file_eio_is_a_per_file_error(daemon: Daemon, journal: Journal) -> None:
    """br0 answers every read with EIO (the daemon sees /proc/PID/mem bound over it: reading
    address 0 of a process fails with EIO); the rest is restored at the deadline."""
    d = daemon
    before = d.files()
    txn_id, deadline = start_txn(d, "10s")
    edit(d)
    in_mount_ns(d.pid, "mount", "--bind", f"/proc/{d.pid}/mem", str(d.path(f"{IFD}/br0")))
    d.wait_idle(max(0.0, deadline - time.time()) + 30)
    (h,) = [h for h in d.history() if h["txn"]["id"] == txn_id]
    t = h["txn"]
    assert (t["phase"], t["reason"]) == ("failed", "timeout"), t
    archive = [e for e in t["errors"] if e.startswith(f"archive /{IFD}/br0:")]
    assert archive and "Input/output error" in archive[0], t["errors"]
    # br0 itself cannot be replaced while a mount sits on it: that is its own per-file error
    assert all(f"/{IFD}/br0" in e for e in t["errors"]), t["errors"]
    latency = float(t["ended_wall_s"]) - deadline
    assert -0.05 <= latency < 1.0, latency
    assert d.files() == before  # (the test's mount namespace sees the real br0, unchanged)
    check_journal(journal, txn_id, "timeout", f"/{IFD}/br0")


def test_file_replaced_by_fifo_or_socket_is_a_per_file_error(
    daemon: Daemon, journal: Journal
) -> None:
    d = daemon
    before = d.files()
    txn_id, deadline = start_txn(d, "10s")
    edit(d)
    d.path(f"{IFD}/br0").unlink()
    os.mkfifo(d.path(f"{IFD}/br0"))
    d.path("etc/network/interfaces").unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(d.path("etc/network/interfaces")))
    try:
        d.wait_idle(max(0.0, deadline - time.time()) + 30)
    finally:
        sock.close()
    (h,) = [h for h in d.history() if h["txn"]["id"] == txn_id]
    t = h["txn"]
    assert (t["phase"], t["reason"]) == ("failed", "timeout"), t
    assert sorted(e.split(":")[0] for e in t["errors"]) == [
        "archive /etc/network/interfaces",
        f"archive /{IFD}/br0",
    ], t["errors"]
    assert all("special file" in e for e in t["errors"])
    assert -0.05 <= float(t["ended_wall_s"]) - deadline < 1.0
    assert d.files() == before  # the FIFO and the socket are replaced by the snapshot's files
    check_journal(journal, txn_id, "timeout", f"/{IFD}/br0")


def test_start_with_a_1gib_file_names_it_and_changes_nothing(daemon: Daemon) -> None:
    d = daemon
    drop_huge(d)
    state = d.state_digest()
    r = d.cli("start")
    assert r.rc == 78, r.out + r.err
    err = r.doc["error"]
    assert err["code"] == "too-large", err
    assert err["message"].startswith(f"/{HUGE}: {GIB} bytes is over the per-file limit"), err
    assert d.txn_json() is None and not list((d.state / "blobs").iterdir())
    assert {k: v for k, v in d.state_digest().items() if k != "statcache.json"} == {
        k: v for k, v in state.items() if k != "statcache.json"
    }
    assert peak_rss_mb(d.pid) < RSS_LIMIT_MB
