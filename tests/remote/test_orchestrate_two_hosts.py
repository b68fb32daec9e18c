# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/orchestrate (R51) driving two real hosts from an orchestrator namespace."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests import nslab
from tests.pki import Pki
from tests.remote.conftest import ENV, PEERS_DIR, REPO, Host, require_namespaces

NETS = {"a": ("192.0.2.1/24", "192.0.2.2/24"), "b": ("203.0.113.1/24", "203.0.113.2/24")}


@contextlib.contextmanager
def fleet(tmp_path: Path, pki: Pki) -> Iterator[tuple[str, dict[str, Host], Path]]:
    require_namespaces()
    with nslab.namespaces("orch", "a", "b") as ns:
        hosts: dict[str, Host] = {}
        token_file = tmp_path / "peer.token"
        try:
            for i, name in enumerate(("a", "b")):
                host_addr, orch_addr = NETS[name]
                nslab.veth(ns[name], "h0", ns["orch"], f"o{i}")
                nslab.ip("-n", ns["orch"], "addr", "add", orch_addr, "dev", f"o{i}")
                h = Host(ns[name], "h0", host_addr, tmp_path / name, pki)
                h.dir.mkdir()
                h.write("etc/nct/addr.conf", host_addr + "\n")
                h.configure(timeout="6s")
                h.apply()
                if name == "a":
                    token_file.write_text(h.add_peer("orch") + "\n")
                else:  # the same credential on both hosts
                    src = hosts["a"].root / PEERS_DIR.lstrip("/") / "orch.toml"
                    dst = h.root / PEERS_DIR.lstrip("/")
                    dst.mkdir(parents=True, mode=0o700)
                    shutil.copy2(src, dst / "orch.toml")
                h.start_daemon()
                hosts[name] = h
                (tmp_path / f"change-{h.ip}.sh").write_text(
                    f"echo 'mtu 1400' > {h.root}/etc/nct/extra.conf\n"
                )
            yield ns["orch"], hosts, token_file
        finally:
            for h in hosts.values():
                h.stop_daemon()


def _orchestrate(
    orch: str, tmp_path: Path, token_file: Path, pki: Pki, *targets: str
) -> tuple[int, dict[str, Any]]:
    out = nslab.ns_exec(
        orch,
        [
            sys.executable,
            str(REPO / "scripts/orchestrate"),
            "--json",
            "--ca",
            str(pki.ca),
            "--token-file",
            str(token_file),
            "--timeout",
            "6s",
            "--verify-timeout",
            "2",
            "--connect-timeout",
            "1",
            "--apply",
            f"sh {tmp_path}/change-{{host}}.sh",
            *targets,
        ],
        capture_output=True,
        env=ENV,
        timeout=120,
    )
    return out.returncode, json.loads(out.stdout)


def _last(h: Host) -> dict[str, Any]:
    return dict(h.local("status").get("last") or {})


def test_two_hosts_confirmed_in_order(tmp_path: Path, pki: Pki) -> None:
    with fleet(tmp_path, pki) as (orch, hosts, token_file):
        rc, doc = _orchestrate(orch, tmp_path, token_file, pki, "192.0.2.1", "203.0.113.1")
        assert rc == 0 and doc["ok"], doc
        assert [h["state"] for h in doc["hosts"]] == ["committed", "committed"]
        for h in hosts.values():
            assert _last(h)["outcome"] == "committed"
            assert h.read("etc/nct/extra.conf") == "mtu 1400\n"


def test_one_host_cut_off_rolls_back_both(tmp_path: Path, pki: Pki) -> None:
    with fleet(tmp_path, pki) as (orch, hosts, token_file):
        b = hosts["b"]
        # b's change moves its address away: the orchestrator can no longer reach it
        (tmp_path / f"change-{b.ip}.sh").write_text(
            f"echo 203.0.113.99/24 > {b.root}/etc/nct/addr.conf\n"
            f"ip netns exec {b.ns} sh {b.dir / 'apply.sh'}\n"
        )
        rc, doc = _orchestrate(orch, tmp_path, token_file, pki, "192.0.2.1", "203.0.113.1")
        assert rc == 1 and not doc["ok"] and "203.0.113.1 not reachable" in doc["error"], doc
        states = {h["target"]: h for h in doc["hosts"]}
        assert states["192.0.2.1"]["state"] == "rolled-back"
        assert "dead-man timer" in states["203.0.113.1"]["note"]
        assert _last(hosts["a"])["outcome"] == "rolled-back"
        assert not (hosts["a"].root / "etc/nct/extra.conf").exists()
        # b rolls itself back when its timer expires, and is reachable again
        end = time.monotonic() + 15
        while _last(b).get("outcome") != "rolled-back" and time.monotonic() < end:
            time.sleep(0.3)
        assert _last(b)["outcome"] == "rolled-back" and _last(b)["reason"] == "timeout"
        assert b.read("etc/nct/addr.conf") == "203.0.113.1/24\n"
        # a fixed change for b now goes through
        (tmp_path / f"change-{b.ip}.sh").write_text(f"echo 'mtu 1400' > {b.root}/etc/nct/x.conf\n")
        rc, doc = _orchestrate(orch, tmp_path, token_file, pki, "203.0.113.1")
        assert rc == 0 and doc["hosts"][0]["state"] == "committed", doc
