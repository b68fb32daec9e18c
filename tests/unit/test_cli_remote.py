# SPDX-License-Identifier: GPL-3.0-or-later
"""``peer`` and ``remote`` click groups, mounted under a parent that sets obj like cli.py does."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from netcfg_txn.cli import main as maincli
from netcfg_txn.cli.context import Ctx
from netcfg_txn.cli.peer import peer
from netcfg_txn.cli.remote import remote
from netcfg_txn.core.errors import BadToken, ConfigError, NetcfgTxnError, NotFound, Unavailable
from netcfg_txn.remote.peers import load_peers
from tests.pki import Pki
from tests.unit.test_remote_tls import PEER_TOKEN, TXN_TOKEN, Server, pki, serve  # noqa: F401


def _group(root: Path, config: Path | None = None) -> click.Group:
    @click.group()
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def top(ctx: click.Context, as_json: bool) -> None:
        ctx.obj = Ctx("/nonexistent", as_json, str(config) if config else None,
                              str(root), None)  # fmt: skip

    top.add_command(peer)
    top.add_command(remote)
    return top


def _invoke(group: click.Group, *args: str) -> Result:
    return CliRunner().invoke(group, list(args), catch_exceptions=True)


def test_peer_add_list_revoke_json(tmp_path: Path) -> None:
    g = _group(tmp_path)
    r = _invoke(g, "--json", "peer", "add", "ctl1", "--operations", "confirm,status")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    token = doc["token"]
    assert doc["ok"] and doc["peer"]["operations"] == ["confirm", "status"]
    assert doc["peer"]["expires"] is not None  # a year by default (R42)
    db = load_peers(Path("/etc/netcfg-txn/peers.d"), tmp_path)
    assert db.authenticate(token, None, "confirm", 0.0).peer == "ctl1"

    r = _invoke(g, "--json", "peer", "list")
    listed = json.loads(r.stdout)
    assert [p["name"] for p in listed["peers"]] == ["ctl1"] and token not in r.stdout

    r = _invoke(g, "--json", "peer", "revoke", "ctl1")
    assert json.loads(r.stdout) == {"ok": True, "revoked": "ctl1"}
    r = _invoke(g, "peer", "revoke", "ctl1")
    assert isinstance(r.exception, NotFound)


def test_peer_add_human_warns_and_token_out(tmp_path: Path) -> None:
    g = _group(tmp_path)
    r = _invoke(g, "peer", "add", "ctl1", "--expires", "never")
    assert r.exit_code == 0
    # (click 8.1 mixes stderr into stdout in CliRunner; 8.2 keeps them apart)
    assert "cannot be shown again" in r.output
    assert len(r.stdout.strip().splitlines()[-1]) >= 43
    out = tmp_path / "token"
    r = _invoke(g, "peer", "add", "ctl1", "--rotate", "--token-out", str(out))
    assert r.exit_code == 0 and str(out) in r.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_text().strip() not in r.output
    r = _invoke(g, "peer", "add", "ctl1")
    assert isinstance(r.exception, ConfigError) and "--rotate" in str(r.exception.hint)
    r = _invoke(g, "peer", "add", "ctl2", "--expires", "tomorrow")
    assert isinstance(r.exception, NetcfgTxnError) and "--expires" in r.exception.message
    r = _invoke(g, "peer", "add", "ctl2", "--operations", "reboot")
    assert isinstance(r.exception, ConfigError)


def test_peers_dir_from_config(tmp_path: Path) -> None:
    cfg = tmp_path / "netcfg-txn.toml"
    cfg.write_text('[files]\ninclude = ["/etc/x/*"]\n[remote]\npeers_dir = "/srv/peers"\n')
    g = _group(tmp_path, cfg)
    assert _invoke(g, "peer", "add", "p").exit_code == 0
    assert (tmp_path / "srv/peers/p.toml").is_file()


def test_remote_commands_against_tls_server(
    pki: Pki,  # noqa: F811
    serve: Callable[..., Server],  # noqa: F811
    tmp_path: Path,
) -> None:
    srv = serve()
    tok = tmp_path / "peer.token"
    tok.write_text(PEER_TOKEN + "\n")
    txn_tok = tmp_path / "txn.token"
    txn_tok.write_text(TXN_TOKEN)
    g = _group(tmp_path)
    base = ["--json", "remote", "--host", f"127.0.0.1:{srv.port}", "--ca", str(pki.ca),
            "--token-file", str(tok)]  # fmt: skip
    r = _invoke(g, *base, "version")
    assert r.exit_code == 0 and json.loads(r.stdout)["api"] == 1
    r = _invoke(g, *base, "confirm", "--txn", "t1", "--txn-token-file", str(txn_tok))
    assert json.loads(r.stdout)["transaction"]["phase"] == "committed"
    wrong = tmp_path / "wrong.token"
    wrong.write_text("nope")
    r = _invoke(g, *base, "confirm", "--txn", "t1", "--txn-token-file", str(wrong))
    assert isinstance(r.exception, BadToken) and r.exception.exit_code == 77
    r = _invoke(g, "remote", "--host", f"127.0.0.1:{srv.port}", "--ca", str(pki.other_ca),
                "version")  # fmt: skip
    assert isinstance(r.exception, Unavailable)
    assert "TLS verification failed" in r.exception.message
    r = _invoke(g, *base, "confirm", "--txn", "../etc", "--txn-token-file", str(txn_tok))
    assert isinstance(r.exception, NetcfgTxnError) and r.exception.exit_code == 2


def test_remote_reads_tokens_only_from_files(tmp_path: Path) -> None:
    g = _group(tmp_path)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    r = _invoke(g, "remote", "--host", "127.0.0.1", "--token-file", str(empty), "version")
    assert isinstance(r.exception, NetcfgTxnError) and "expected exactly one" in r.exception.message
    r = _invoke(g, "remote", "--host", "127.0.0.1", "--token-file", str(tmp_path / "missing"),
                "version")  # fmt: skip
    assert isinstance(r.exception, NetcfgTxnError) and r.exception.exit_code == 2
    assert "cannot read peer token" in r.exception.message
    help_text = _invoke(g, "remote", "--help").stdout
    assert "--token-file" in help_text and "--token " not in help_text


def test_cli_run_maps_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through cli.run() (the real entry point)."""
    with pytest.raises(SystemExit) as e:
        maincli.run(["--json", "--root", str(tmp_path), "peer", "revoke", "ghost"])
    assert e.value.code == NotFound.exit_code
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["error"]["code"] == "not-found"
