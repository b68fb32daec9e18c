# SPDX-License-Identifier: GPL-3.0-or-later
"""The security review's findings against the real daemon over TLS, from a peer namespace:
what a remote peer can read, what it can make the host connect to, what its bad input gets,
and that an attacker sharing its address cannot lock it out."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tests import nslab
from tests.pki import Pki
from tests.remote.conftest import ENV, PORT, REPO, Lab, lab_for, wait_peer

HOST = "192.0.2.1"
SECRET = "hunter2-WIFI-SECRET"


def raw(
    lab: Lab,
    method: str,
    path: str,
    *,
    token: str | None = None,
    txn_token: bytes | None = None,
    body: bytes = b"",
) -> dict[str, Any]:
    headers = {"Content-Type": b"application/json".hex()}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}".encode().hex()
    if txn_token is not None:
        headers["X-Netcfg-Txn-Token"] = txn_token.hex()
    spec = {"host": HOST, "port": PORT, "ca": str(lab.peer.pki.ca), "method": method,
            "path": path, "headers": headers, "body": body.hex()}  # fmt: skip
    out = nslab.ns_exec(
        lab.peer.ns,
        [sys.executable, str(REPO / "tests/remote/raw_call.py"), json.dumps(spec)],
        capture_output=True,
        env=ENV,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def _start(lab: Lab, **kw: Any) -> tuple[str, str]:
    doc = lab.peer.call(HOST, "start", token=lab.token, **kw)
    assert doc["ok"], doc
    return doc["doc"]["transaction"]["id"], doc["doc"]["token"]


def _no_secret_anywhere(lab: Lab, docs: list[Any]) -> None:
    for d in docs:
        assert SECRET not in json.dumps(d), d
    assert SECRET not in lab.host.log()


# ------------------------------------------------------------------------------------ 20


def test_version_needs_a_peer_token_on_the_tls_listener(lab: Lab) -> None:
    anon = raw(lab, "GET", "/v1/version")
    assert anon["status"] == 401 and anon["body"]["error"]["code"] == "bad-token", anon
    assert "version" not in anon["body"]
    ok = raw(lab, "GET", "/v1/version", token=lab.token)
    assert ok["status"] == 200 and ok["body"]["api"] == 1
    assert lab.host.local("status")["ok"]  # the local socket is unchanged


# ------------------------------------------------------------------------------------- 6


def test_file_contents_need_the_diff_operation_and_secrets_are_redacted(lab: Lab) -> None:
    h = lab.host
    h.write("etc/nct/wifi.conf", f"wpa-ssid home\nwpa-psk {SECRET}-old\n")
    tid, ttok = _start(lab, timeout="60s", allow_pending=True)
    h.write("etc/nct/wifi.conf", f"wpa-ssid home\nwpa-psk {SECRET}-new\n")
    # the default peer (start/arm/confirm/rollback/status) sees phases and times, no contents
    for path in ("/v1/diff", "/v1/plan"):
        denied = raw(lab, "GET", path, token=lab.token)
        assert denied["status"] == 403, denied
        assert "may not diff" in denied["body"]["error"]["message"]
    auditor = h.add_peer("auditor", operations=["status", "diff"])
    wait_peer(lab, auditor)
    diff = raw(lab, "GET", "/v1/diff", token=auditor)
    assert diff["status"] == 200, diff
    (entry,) = [f for f in diff["body"]["files"] if f["path"] == "/etc/nct/wifi.conf"]
    assert "-wpa-psk <redacted>" in entry["diff"] and "+wpa-psk <redacted>" in entry["diff"]
    plan = raw(lab, "GET", "/v1/plan", token=auditor)
    assert plan["status"] == 200 and plan["body"]["transaction"] == tid
    local = h.local("diff")
    assert local["ok"] and "<redacted>" in json.dumps(local)
    seen = [
        diff,
        plan,
        local,
        raw(lab, "GET", "/v1/status", token=lab.token),
        raw(lab, "GET", f"/v1/transactions/{tid}", token=lab.token),
    ]
    assert lab.peer.call(HOST, "rollback", tid, ttok, token=lab.token)["ok"]
    seen += [raw(lab, "GET", "/v1/history", token=lab.token), h.local("history")]
    _no_secret_anywhere(lab, seen)


# ----------------------------------------------------------------------------- 11, 12, 19


def test_bad_numbers_headers_and_force_get_clear_errors_and_change_nothing(lab: Lab) -> None:
    tid, ttok = _start(lab, timeout="60s")
    before = lab.host.state()
    arm = f"/v1/transactions/{tid}/arm"
    tok = ttok.encode()
    cases = {
        "NaN": (b'{"timeout": NaN}', tok, 400),
        "Infinity": (b'{"timeout": Infinity}', tok, 400),
        "1e999": (b'{"timeout": 1e999}', tok, 400),
        "400 digits": (b'{"timeout": "' + b"9" * 400 + b'"}', tok, 400),
        "5000-digit int": (b'{"timeout": ' + b"9" * 5000 + b"}", tok, 400),
        "under the minimum": (b'{"timeout": 0.001}', tok, 400),
        "non-UTF-8 txn token": (b'{"timeout": "60s"}', b"\xff\xfe\x80token", 400),
        "remote force": (b'{"timeout": "60s", "force": true}', tok, 403),
    }
    forced = raw(lab, "POST", f"/v1/transactions/{tid}/confirm", token=lab.token, txn_token=tok,
                 body=b'{"force": true}')  # fmt: skip
    assert forced["status"] == 403 and "only local root" in forced["body"]["error"]["message"]
    for what, (body, txn_token, status) in cases.items():
        r = raw(lab, "POST", arm, token=lab.token, txn_token=txn_token, body=body)
        assert r["status"] == status, (what, r)
        assert r["body"]["ok"] is False and r["body"]["error"]["message"], (what, r)
    overprint = json.dumps({"label": "x\x1b[2J\rNo transaction is open."}).encode()
    label = raw(lab, "POST", "/v1/transactions", token=lab.token, body=overprint)
    assert label["status"] == 400 and "label" in label["body"]["error"]["message"]
    assert lab.host.state() == before
    assert "Traceback" not in lab.host.log() and "this is a bug" not in lab.host.log()


# ------------------------------------------------------------------------------------- 7


def test_remote_probes_cannot_reach_loopback_and_show_pass_fail_only(lab: Lab) -> None:
    before = lab.host.state()
    for probes in (["tcp:127.0.0.1:22"], ["http://localhost:7468/v1/status"], ["icmp:fe80::1"]):
        doc = lab.peer.call(HOST, "start", token=lab.token, probes=probes, policy="probes")
        assert not doc["ok"] and doc["code"] == "not-permitted", (probes, doc)
        assert "not allowed" in doc["message"]
    assert lab.host.state() == before
    # the remote peer learns whether a probe passed, not what the host saw (error, banner, status)
    spec = "tcp:192.0.2.2:22 timeout=2s"  # refused = reachable: passes, with a detail
    tid, ttok = _start(lab, probes=[spec], policy="probes", probe_settings={"rounds": 100})
    end = time.monotonic() + 30
    while time.monotonic() < end:
        local = lab.host.local("status")
        if (local.get("probes") or {}).get("last"):
            break
        time.sleep(0.2)
    (mine,) = local["probes"]["last"]["results"]
    assert mine["ok"] and mine["detail"], mine  # the host's admin sees why
    remote = raw(lab, "GET", "/v1/status", token=lab.token)["body"]
    (theirs,) = remote["probes"]["last"]["results"]
    assert theirs == {"spec": spec, "ok": True}, remote["probes"]
    assert lab.peer.call(HOST, "rollback", tid, ttok, token=lab.token)["ok"]


def test_allow_list_admits_what_the_admin_allows(tmp_path: Path, pki: Pki) -> None:
    extra = '[probes]\nsettle_s = 0.2\ninterval_s = 0.2\nallow = ["192.0.2.0/24"]'
    with lab_for(tmp_path, pki, extra=extra) as lab:
        refused = lab.peer.call(HOST, "start", token=lab.token, probes=["tcp:198.51.100.7:22"])
        assert not refused["ok"] and "outside [probes] allow" in refused["message"]
        tid, ttok = _start(lab, probes=["tcp:192.0.2.2:22"], policy="probes")
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if lab.host.local("status").get("state") == "idle":
                break
            time.sleep(0.2)
        assert lab.host.local("history")["history"][0]["phase"] == "committed"


# ------------------------------------------------------------------------------------- 8


def test_failures_from_the_controllers_address_never_lock_out_its_valid_token(
    tmp_path: Path, pki: Pki
) -> None:
    """An attacker behind the controller's NAT (same source address) spends the failure budget;
    the controller's valid token still gets its confirm through."""
    with lab_for(tmp_path, pki, extra="auth_failures_per_minute = 2") as lab:
        tid, ttok = _start(lab, timeout="60s")
        codes = [lab.peer.call(HOST, "status", token="guess")["code"] for _ in range(5)]
        assert codes[:2] == ["bad-token"] * 2 and codes[-1] == "rate-limited", codes
        assert lab.peer.call(HOST, "status", token=lab.token)["ok"]
        assert lab.peer.call(HOST, "confirm", tid, ttok, token=lab.token)["ok"]
        assert lab.peer.call(HOST, "status", token="guess")["code"] == "rate-limited"


def test_command_output_quoting_a_secret_is_redacted_for_remote_peers(lab: Lab) -> None:
    """A failed rollback step records the command's output, which can quote a config line."""
    h = lab.host
    tid, ttok = _start(lab, timeout="60s")
    h.write("etc/nct/addr.conf", h.addr + "\n# edited\n")  # a change, so the hook runs
    (h.dir / "apply.sh").write_text(f'echo "line 3: wpa-psk {SECRET}: bad value" >&2\nexit 1\n')
    done = lab.peer.call(HOST, "rollback", tid, ttok, token=lab.token)
    assert not done["ok"] and done["code"] == "failed", done
    assert SECRET not in done["message"] and "wpa-psk <redacted>" in done["message"]
    views = [
        raw(lab, "GET", f"/v1/transactions/{tid}", token=lab.token),
        raw(lab, "GET", "/v1/history", token=lab.token),
        raw(lab, "GET", "/v1/status", token=lab.token),
    ]
    for v in views:
        assert v["status"] == 200 and SECRET not in json.dumps(v), v
    assert "wpa-psk <redacted>" in json.dumps(views[0])
    assert SECRET in json.dumps(h.local("history"))  # local root sees the record as it is
    assert "wpa-psk <redacted>" in h.log() and SECRET not in h.log()  # nor in the journal
