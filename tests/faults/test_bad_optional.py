# SPDX-License-Identifier: GPL-3.0-or-later
"""A bad peers.d file, or unusable TLS material, when the daemon (re)starts with a transaction
open: the daemon comes up, says loudly what it skipped, and the deadline fires on time.

On a654695 the restarted daemon exited 78 (the first peers load was strict; a TLS key it could
not load was fatal) before arming the timer.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests import nslab
from tests.daemon.harness import Daemon
from tests.faults.conftest import (
    MSG_DEADLINE_RETRY,
    MSG_OPTIONAL_FAILED,
    PEERS_DIR,
    PORT,
    Journal,
    add_peer,
    assert_rolled_back_at_deadline,
    edit,
    install_tls,
    need,
    remote_call,
    remote_toml,
    restart,
    start_txn,
)
from tests.pki import Pki


def _break_peers(d: Daemon) -> str:
    peers = d.root / PEERS_DIR.lstrip("/")
    (peers / "wide.toml").write_text((peers / "ctl.toml").read_text().replace("ctl", "wide"))
    (peers / "wide.toml").chmod(0o644)  # readable by everyone: refused
    (peers / "junk.toml").write_text("name = [\n\x00garbage")
    (peers / "junk.toml").chmod(0o600)
    return "peers"


def _break_tls(d: Daemon) -> str:
    (d.root / "etc/netcfg-txn/tls/key.pem").write_text("not a key\n")
    return "remote listener switched off"


@pytest.mark.parametrize("breakage", [_break_peers, _break_tls], ids=["peers-file", "tls-key"])
def test_bad_optional_file_at_restart(
    spawn: Callable[..., Daemon],
    journal: Journal,
    pki: Pki,
    breakage: Callable[[Daemon], str],
) -> None:
    need("ip", "unshare")
    with nslab.namespaces("host") as ns:
        host = ns["host"]
        d = spawn(remote_toml(f"127.0.0.1:{PORT}"), wrapper=["ip", "netns", "exec", host,
                                                            *journal.wrapper()])  # fmt: skip
        install_tls(d, pki)
        token = add_peer(d, "ctl")
        d.start(timeout_s=30)
        before = d.files()
        txn_id, deadline = start_txn(d, "8s")
        edit(d)
        part = breakage(d)

        restart(d)
        st = d.api("GET", "/v1/status")
        assert st["transaction"]["id"] == txn_id and st["state"] == "open"
        failed = journal.wait_for(MESSAGE_ID=MSG_OPTIONAL_FAILED, NETCFG_PART=part)
        assert failed["PRIORITY"] == "3"
        if part == "peers":
            msgs = [m["MESSAGE"] for m in journal.find(MESSAGE_ID=MSG_OPTIONAL_FAILED)]
            assert any("wide.toml" in m and "too open" in m for m in msgs), msgs
            assert any("junk.toml" in m for m in msgs), msgs
            # The good peer still works: only the bad files were skipped.
            got = remote_call(host, pki, "127.0.0.1", token, "status")
            assert got["ok"] and got["doc"]["transaction"]["id"] == txn_id, got
        else:
            assert "key.pem" in failed["MESSAGE"]
        assert_rolled_back_at_deadline(d, journal, f"bad-{part.split()[0]}", txn_id, deadline,
                                       before)  # fmt: skip


def test_control_socket_unusable_at_restart(spawn: Callable[..., Daemon], journal: Journal) -> None:
    """Nobody can confirm without the control socket, but the deadline must still fire; then the
    daemon exits with the error (so systemd restarts it). On a654695 it exited at once (78)."""
    need("unshare")
    d = spawn(wrapper=journal.wrapper())
    d.start(timeout_s=30)
    before = d.files()
    txn_id, deadline = start_txn(d, "6s")
    edit(d)
    d.kill()
    d.socket.unlink()
    d.socket.write_text("not a socket\n")  # what _bind_control refuses to replace
    d.start(wait=False)
    crit = journal.wait_for(MESSAGE_ID=MSG_DEADLINE_RETRY, timeout_s=20)
    assert "cannot serve the control socket" in crit["MESSAGE"] and crit["PRIORITY"] == "2"
    assert_rolled_back_at_deadline(d, journal, "control-socket", txn_id, deadline, before)
    assert d.reap(15) == 78  # then it exits with the error: config-invalid (not a socket)
    assert d.socket.read_text() == "not a socket\n"
