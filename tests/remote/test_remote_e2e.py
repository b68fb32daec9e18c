# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end over TLS between namespaces: confirm, cut-off rollback, address change, auth."""

from __future__ import annotations

import time
from pathlib import Path

from tests.pki import Pki
from tests.remote.conftest import Lab, lab_for, wait_peer

HOST = "192.0.2.1"


def _wait_idle(lab: Lab, seconds: float) -> dict[str, object]:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        st = lab.host.local("status")
        if not st.get("transaction") and "last" in st:  # (a "busy" answer has no "last")
            return st
        time.sleep(0.2)
    raise AssertionError(f"still open after {seconds}s: {lab.host.log()}")


def test_remote_start_change_confirm_commits(lab: Lab) -> None:
    p = lab.peer
    v = p.call(HOST, "version", token=lab.token)
    assert v["ok"] and "remote-tls" in v["doc"]["capabilities"]
    started = p.call(HOST, "start", token=lab.token, timeout="30s", label="e2e")
    assert started["ok"], started
    tid, ttoken = started["doc"]["transaction"]["id"], started["doc"]["token"]
    actor = lab.host.local("status")["transaction"]["actor"]
    assert "orch1" in str(actor) and "192.0.2.2" in str(actor)
    lab.host.write("etc/nct/extra.conf", "mtu 1400\n")  # a change that keeps the path
    done = p.call(HOST, "confirm", tid, ttoken, token=lab.token)
    assert done["ok"] and done["doc"]["transaction"]["phase"] == "committed", done
    again = p.call(HOST, "confirm", tid, ttoken, token=lab.token)  # a lost reply: retry (R36)
    assert again["ok"] and again["doc"].get("already_committed") is True
    assert lab.host.read("etc/nct/extra.conf") == "mtu 1400\n"


def test_cut_off_confirm_cannot_arrive_timer_rolls_back_then_next_txn_works(lab: Lab) -> None:
    p = lab.peer
    started = p.call(HOST, "start", token=lab.token, timeout="4s")
    tid, ttoken = started["doc"]["transaction"]["id"], started["doc"]["token"]
    lab.host.write("etc/nct/addr.conf", "192.0.2.99/24\n")  # the bad change: wrong address
    lab.host.apply()
    lost = p.call(HOST, "confirm", tid, ttoken, token=lab.token, timeout_s=1.0)
    assert not lost["ok"] and lost["code"] == "unavailable", lost
    st = _wait_idle(lab, 15)
    assert st["last"]["outcome"] == "rolled-back" and st["last"]["reason"] == "timeout"  # type: ignore[index]
    assert lab.host.read("etc/nct/addr.conf") == "192.0.2.1/24\n"
    # the timer restored the path: the peer can run (and confirm) the next transaction
    late = p.call(HOST, "confirm", tid, ttoken, token=lab.token)
    assert not late["ok"] and late["code"] == "no-transaction"
    nxt = p.call(HOST, "start", token=lab.token, timeout="30s")
    assert nxt["ok"], nxt
    ok = p.call(
        HOST, "confirm", nxt["doc"]["transaction"]["id"], nxt["doc"]["token"], token=lab.token
    )
    assert ok["ok"] and ok["doc"]["transaction"]["phase"] == "committed"


def test_management_address_change_confirm_from_new_address(lab: Lab) -> None:
    p = lab.peer
    started = p.call(HOST, "start", token=lab.token, timeout="30s")
    tid, ttoken = started["doc"]["transaction"]["id"], started["doc"]["token"]
    lab.host.write("etc/nct/addr.conf", "192.0.2.11/24\n")
    lab.host.apply()
    assert not p.call(HOST, "status", token=lab.token, timeout_s=1.0)["ok"]
    # a new connection to the new address, verified against the host's stable name
    done = p.call(
        "192.0.2.11", "confirm", tid, ttoken, token=lab.token, client={"server_name": "host1.test"}
    )
    assert done["ok"] and done["doc"]["transaction"]["phase"] == "committed", done
    assert lab.host.read("etc/nct/addr.conf") == "192.0.2.11/24\n"


def test_auth_rejections_change_nothing(lab: Lab, tmp_path: Path) -> None:
    p, h = lab.peer, lab.host
    expired = h.add_peer("old", expires=time.time() - 10)
    revoked = h.add_peer("gone")
    confirm_only = h.add_peer("weak", operations=["status", "confirm"])
    # The daemon must have loaded these files before "gone" is revoked: a peer it never knew is
    # refused too, so waiting for "gone" to be refused would prove nothing about the reload.
    wait_peer(lab, revoked)
    wait_peer(lab, confirm_only)
    first = p.call(HOST, "start", token=lab.token, timeout="30s")
    old_tid, old_tok = first["doc"]["transaction"]["id"], first["doc"]["token"]
    assert p.call(HOST, "rollback", old_tid, old_tok, token=lab.token)["ok"]
    cur = p.call(HOST, "start", token=lab.token, timeout="30s")
    tid, ttok = cur["doc"]["transaction"]["id"], cur["doc"]["token"]
    from netcfg_txn.remote.peers import revoke_peer

    revoke_peer(Path("/etc/netcfg-txn/peers.d"), "gone", root=h.root)
    wait_peer(lab, revoked, known=False)
    before = h.state()
    cases = {
        "wrong peer token": (p.call(HOST, "confirm", tid, ttok, token="guess"), "bad-token"),
        "no peer token": (p.call(HOST, "confirm", tid, ttok), "bad-token"),
        "expired peer": (p.call(HOST, "confirm", tid, ttok, token=expired), "bad-token"),
        "revoked peer": (p.call(HOST, "confirm", tid, ttok, token=revoked), "bad-token"),
        "operation not allowed": (
            p.call(HOST, "rollback", tid, ttok, token=confirm_only),
            "not-permitted",
        ),
        "wrong txn token": (p.call(HOST, "confirm", tid, "x" * 43, token=lab.token), "bad-token"),
        "replayed token of an ended txn": (
            p.call(HOST, "confirm", tid, old_tok, token=lab.token),
            "bad-token",
        ),
        "plaintext to the TLS port": (
            p.call(HOST, "confirm", tid, ttok, token=lab.token, client={"plaintext": True}),
            "unavailable",
        ),
        "untrusted server CA": (
            p.call(HOST, "status", token=lab.token, client={"ca_file": str(lab.peer.pki.other_ca)}),
            "unavailable",
        ),
    }
    for what, (doc, code) in cases.items():
        assert not doc["ok"] and doc["code"] == code, (what, doc)
        assert "guess" not in doc["message"] and ttok not in doc["message"], what
    assert h.state() == before
    assert "x" * 43 not in h.log() and ttok not in h.log() and lab.token not in h.log()
    assert p.call(HOST, "confirm", tid, ttok, token=lab.token)["ok"]


def test_client_certificate_required(tmp_path: Path, pki: Pki) -> None:
    extra = 'client_ca = "/etc/netcfg-txn/tls/client-ca.pem"'
    with lab_for(tmp_path, pki, extra=extra) as lab:
        # (the [remote] table continues: client_ca is one of its keys)
        no_cert = lab.peer.call(HOST, "status", token=lab.token)
        assert not no_cert["ok"] and no_cert["code"] == "unavailable", no_cert
        wrong = lab.peer.call(
            HOST,
            "status",
            token=lab.token,
            client={
                "client_cert": str(pki.other_client_cert),
                "client_key": str(pki.other_client_key),
            },
        )
        assert not wrong["ok"]
        good = lab.peer.call(
            HOST,
            "status",
            token=lab.token,
            client={"client_cert": str(pki.client_cert), "client_key": str(pki.client_key)},
        )
        assert good["ok"], good
