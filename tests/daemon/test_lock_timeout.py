# SPDX-License-Identifier: GPL-3.0-or-later
"""The state lock: a request that waits longer than ``[state] lock_timeout`` while a slow
operation (here a rollback whose ``[apply]`` hook takes seconds) holds it gets "busy", exit 75,
and changes nothing; once the operation is done, the same request succeeds."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.daemon.harness import BASE_CONFIG, Daemon


def test_request_waiting_past_lock_timeout_exits_75(spawn: Callable[..., Daemon]) -> None:
    toml = BASE_CONFIG.replace('lock_timeout = "5s"', 'lock_timeout = "500ms"')
    d = spawn(start=False)
    marker, release = d.base / "hook-done", d.base / "release"
    # The hook holds the lock until the test releases it (at most 60 s): however slow the CLI
    # starts on a loaded machine, the second request arrives while the lock is held.
    hook = f"for i in $(seq 1200); do [ -e {release} ] && break; sleep 0.05; done; : > {marker}"
    d.config.write_text(toml + f'[apply]\nbackend = "none"\ncommand = "{hook}"\n')
    d.start()
    assert d.cli("start", "--timeout", "5m").rc == 0
    d.path("etc/network/interfaces.d/eth1").write_text("iface eth1 inet manual\n")
    slow = d.cli_popen("rollback")
    try:
        end = time.monotonic() + 20
        while not d.cli("status").doc.get("busy"):  # the rollback holds the lock
            assert slow.poll() is None and time.monotonic() < end, d.log_text()
            time.sleep(0.05)
        t0 = time.monotonic()
        r = d.cli("start", "--timeout", "5m", "--allow-pending")
        waited = time.monotonic() - t0
        assert r.rc == 75, (r.rc, r.out, r.err)
        assert r.doc["error"]["code"] == "busy" and "state lock" in r.doc["error"]["message"]
        assert waited >= 0.5, waited  # gave up after lock_timeout, while the hook still ran
        assert not marker.exists()
    finally:
        release.touch()
        out, err = slow.communicate(timeout=30)
    assert slow.returncode == 0, (out, err)
    assert marker.exists()
    # the refused start left nothing behind: idle, and the one history entry is the rollback
    assert d.txn_json() is None and len(d.history()) == 1
    r = d.cli("start", "--timeout", "5m")
    assert r.rc == 0, r.err
    d.cli("rollback")
