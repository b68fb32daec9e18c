# SPDX-License-Identifier: GPL-3.0-or-later
"""What the man page and README promise a user of the CLI, against the real daemon: exit codes for
non-root callers, both forms of boot-rollback, a repeated commit, rejected file sets at commit,
other people's edits in every output, a corrupt baseline, ``--json`` after the verb, and the
smaller texts of status, history, diff and config show."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest

from netcfg_txn.core.errors import NetcfgTxnError
from tests.daemon.harness import BASE_CONFIG, Daemon, config, make

NOBODY = 65534

# The interpreter lives under /root (0700 here): the child imports everything as root, then
# drops to nobody and runs the real CLI entry point, which only connects to the socket.
AS_NOBODY = """
import os, sys
import netcfg_txn.cli.main, netcfg_txn.cli.fastpath, netcfg_txn.cli.group, netcfg_txn.engine
import netcfg_txn.net.choose, netcfg_txn.net.stack, netcfg_txn.assemble
import netcfg_txn.host.runner, netcfg_txn.host.clock
import json, http.client, encodings.idna
os.setgroups([])
os.setgid(%(uid)d)
os.setuid(%(uid)d)
netcfg_txn.cli.main.run(sys.argv[1:])
"""


def _cli_as_nobody(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", AS_NOBODY % {"uid": NOBODY}, "--socket", str(d.socket),
            "--root", str(d.root), "--state-dir", str(d.state), "--config", str(d.config),
            *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, cwd="/")  # fmt: skip


@pytest.fixture
def public_daemon() -> Iterator[Daemon]:
    """A daemon whose socket directory anyone may enter, as /run/netcfg-txn is: only the socket's
    own 0600 mode keeps a non-root user out."""
    base = Path(tempfile.mkdtemp(prefix="nct-h5-", dir="/tmp"))
    os.chmod(base, 0o755)
    d = make(base / "d")
    os.chmod(d.base, 0o755)
    try:
        d.start()
        yield d
    finally:
        d.kill()
        shutil.rmtree(base, ignore_errors=True)


def test_non_root_gets_77_and_a_sudo_hint_from_every_daemon_command(
    public_daemon: Daemon,
) -> None:
    d = public_daemon
    assert d.cli("start", "--timeout", "60s").rc == 0
    assert (os.stat(d.socket).st_mode & 0o777) == 0o600
    files, state = d.files(), d.state_digest()
    for args in (["start"], ["commit"], ["rollback"], ["rollback", "--force"],
                 ["extend", "--timeout", "5m"], ["try", "--", "true"], ["status"]):  # fmt: skip
        p = _cli_as_nobody(d, *args)
        assert p.returncode == 77, (args, p.returncode, p.stdout, p.stderr)
        assert "sudo" in p.stderr, (args, p.stderr)
        j = _cli_as_nobody(d, "--json", *args)
        assert j.returncode == 77 and json.loads(j.stdout)["error"]["code"] == "not-permitted"
    assert d.files() == files and d.state_digest() == state


def test_boot_rollback_takes_its_options_after_the_verb_too(spawn: Callable[..., Daemon]) -> None:
    d = spawn()
    target = d.path("etc/network/interfaces.d/eth1")
    before = target.read_bytes()
    assert d.cli("start", "--timeout", "1h").rc == 0
    target.write_text("iface eth1 inet static\n    address 198.51.100.1/24\n")
    d.kill()  # a crash with the transaction open
    argv = [sys.executable, "-m", "netcfg_txn", "boot-rollback", "--config", str(d.config),
            "--root", str(d.root), "--state-dir", str(d.state), "--json"]  # fmt: skip
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    doc = json.loads(p.stdout)
    assert doc["transaction"]["phase"] == "rolled-back" and doc["transaction"]["reason"] == "boot"
    assert target.read_bytes() == before and d.txn_json() is None
    again = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and json.loads(again.stdout)["actions"] == []


def test_repeated_commit_with_only_the_token_says_already_committed(daemon: Daemon) -> None:
    token = daemon.cli("start", "--timeout", "60s").doc["token"]
    assert daemon.cli("commit", "--token", token).rc == 0
    state = daemon.state_digest()
    again = daemon.cli("commit", "--token", token, as_json=False)
    assert again.rc == 0, again.err
    assert "already committed" in again.out
    j = daemon.cli("commit", "--token", token)
    assert j.rc == 0 and j.doc["already_committed"] is True
    assert daemon.state_digest() == state
    # A token that ended otherwise says how it ended (66), and a wrong one stays wrong.
    t2 = daemon.cli("start", "--timeout", "60s").doc["token"]
    assert daemon.cli("rollback").rc == 0
    late = daemon.cli("commit", "--token", t2)
    assert late.rc == 66 and "rolled-back (manual)" in late.doc["error"]["message"]
    assert daemon.cli("commit", "--token", "not-" + token).rc == 66


def test_commit_of_a_file_set_rolled_back_before_needs_force(daemon: Daemon) -> None:
    target = daemon.path("etc/network/interfaces.d/eth1")
    bad = "iface eth1 inet static\n    address 198.51.100.7/24\n"
    assert daemon.cli("start", "--timeout", "2s").rc == 0
    target.write_text(bad)
    daemon.wait_idle(30)  # the timer rolled it back: this set is now remembered
    assert daemon.history()[0]["txn"]["reason"] == "timeout"
    assert daemon.cli("start", "--timeout", "1h").rc == 0
    target.write_text(bad)  # the very same change again
    r = daemon.cli("commit")
    assert r.rc == 78, (r.out, r.err)
    assert r.doc["error"]["code"] == "rejected-config"
    assert "--force" in r.doc["error"]["hint"] and "timeout" in r.doc["error"]["message"]
    assert daemon.txn_json()["phase"] == "open"  # type: ignore[index]
    ok = daemon.cli("commit", "--force")
    assert ok.rc == 0, ok.out
    assert target.read_text() == bad and daemon.history()[0]["txn"]["phase"] == "committed"
    assert "commit forced by uid=0" in daemon.log.read_text()


def test_an_unchanged_set_that_timed_out_is_not_remembered_as_rejected(daemon: Daemon) -> None:
    assert daemon.cli("start", "--timeout", "2s").rc == 0  # nobody changes anything
    daemon.wait_idle(30)
    assert daemon.history()[0]["txn"]["reason"] == "timeout"
    assert daemon.cli("start", "--timeout", "1h").rc == 0
    r = daemon.cli("commit")  # the original config, kept: no --force needed
    assert r.rc == 0, (r.out, r.err)


def test_every_changed_file_is_named_by_status_commit_rollback_and_history(
    daemon: Daemon,
) -> None:
    mine = "/etc/network/interfaces.d/eth1"
    theirs = "/etc/network/interfaces.d/br0"  # edited by someone else meanwhile, no extend
    for verb in ("commit", "rollback"):
        assert daemon.cli("start", "--timeout", "1h", "--allow-pending").rc == 0
        daemon.path(mine[1:]).write_text(f"# {verb}: mine\n")
        daemon.path(theirs[1:]).write_text(f"# {verb}: theirs\n")
        st = daemon.cli("status", as_json=False)
        assert mine in st.out and theirs in st.out, st.out
        r = daemon.cli(verb, as_json=False)
        assert r.rc == 0, r.err
        assert mine in r.out and theirs in r.out, (verb, r.out)
        j = daemon.history()[0]
        assert {mine, theirs} <= set(j["changed"]), j
        h = daemon.cli("history", "--limit", "1", as_json=False)
        assert mine in h.out and theirs in h.out, h.out


def test_a_corrupt_baseline_counts_as_missing_and_says_so(spawn: Callable[..., Daemon]) -> None:
    d = spawn()
    assert d.cli("start").rc == 0 and d.cli("commit").rc == 0
    (d.state / "baseline.json").write_text('{"files": [tru')
    st = d.cli("status")
    assert st.rc == 0, st.out
    assert "corrupt" in " ".join(st.doc["warnings"]) and st.doc["pending"] == []
    assert "WARNING" in d.cli("status", as_json=False).out
    s = d.cli("start")
    assert s.rc == 0, s.out
    assert "corrupt" in " ".join(s.doc["warnings"])
    assert d.cli("rollback").rc == 0  # writes a good baseline again
    (d.state / "baseline.json").write_text("not json")
    human = d.cli("start", "--allow-pending", as_json=False)
    assert human.rc == 0 and "WARNING" in human.err and "corrupt" in human.err, human.err
    log = d.log.read_text()
    assert "baseline" in log and "corrupt" in log  # loud in the log too
    assert d.cli("rollback").rc == 0
    (d.state / "baseline.json").write_text("")
    d.stop()
    off = d.cli("status")
    assert off.rc == 0 and off.doc["offline"] and off.doc["warnings"]


def test_json_after_the_verb_on_every_command(spawn: Callable[..., Daemon]) -> None:
    d = spawn()
    cases: list[tuple[list[str], int]] = [
        (["status", "--json"], 0),
        (["history", "--json"], 0),
        (["config", "show", "--json"], 0),
        (["start", "--json", "--timeout", "30s"], 0),
        (["status", "--json"], 0),
        (["diff", "--json"], 0),
        (["plan", "--json"], 0),
        (["extend", "--timeout", "40s", "--json"], 0),
        (["start", "--json"], 75),
        (["commit", "--json"], 0),
        (["commit", "--json"], 66),
        (["confirm", "--json"], 66),
        (["rollback", "--json"], 66),
        (["boot-rollback", "--json"], 75),
        (["try", "--timeout", "30s", "--json", "--", "true"], 0),
        (["rollback", "--force", "--json"], 0),
        (["history", "--limit", "0", "--json"], 2),
        (["peer", "--peers-dir", str(d.base / "peers"), "list", "--json"], 0),
        (["remote", "--host", "127.0.0.1:1", "start", "--no-arm", "--json"], 2),
    ]
    for args, rc in cases:
        r = d.cli(*args, as_json=False)
        assert r.rc == rc, (args, r.rc, r.out, r.err)
        doc = json.loads(r.out)  # exactly one document
        assert doc["ok"] is (rc == 0), (args, doc)


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_of_the_tree_accepts_json_after_its_verb() -> None:
    from netcfg_txn.cli.group import cli

    missing = []
    for path in _commands(cli):
        cmd: click.Command = cli
        for name in path:
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[name]
        if not any("--json" in getattr(p, "opts", ()) for p in cmd.params):
            missing.append(" ".join(path))
    assert not missing, f"commands without --json: {missing}"


def test_no_arm_is_refused_clearly_and_the_api_refuses_arm_false(daemon: Daemon) -> None:
    r = daemon.cli("remote", "--host", "127.0.0.1:1", "start", "--no-arm", as_json=False)
    assert r.rc == 2, (r.out, r.err)
    assert "--no-arm is not supported" in r.err and "always armed" in r.err
    with pytest.raises(NetcfgTxnError) as ei:
        daemon.api("POST", "/v1/transactions", {"arm": False})
    assert ei.value.exit_code == 2 and "arm" in ei.value.message
    assert daemon.txn_json() is None


# ------------------------------------------------------------------------------ smaller texts


def test_history_shows_the_label(daemon: Daemon) -> None:
    """(Status saying "overdue" is tested in fake time in tests/fakeroot/test_daemon_timer.py.)"""
    assert daemon.cli("start", "--label", "move eth1 to vlan 7").rc == 0
    assert daemon.cli("commit").rc == 0
    h = daemon.cli("history", as_json=False)
    assert "move eth1 to vlan 7" in h.out, h.out


def test_diff_shows_pending_edits_against_the_baseline(spawn: Callable[..., Daemon]) -> None:
    d = spawn()
    no_base = d.cli("diff")
    assert no_base.rc == 66 and "baseline" in no_base.doc["error"]["message"]
    assert d.cli("start").rc == 0
    d.path("etc/network/interfaces.d/eth1").write_text("iface eth1 inet manual\n")
    assert d.cli("commit").rc == 0  # the baseline now holds the committed eth1
    d.path("etc/network/interfaces.d/eth1").write_text("iface eth1 inet dhcp\n")
    refused = d.cli("start")
    assert refused.rc == 78 and "netcfg-txn diff" in refused.doc["error"]["hint"]
    for running in (True, False):
        r = d.cli("diff", as_json=False)
        assert r.rc == 0, r.err
        assert "-iface eth1 inet manual" in r.out and "+iface eth1 inet dhcp" in r.out, r.out
        assert d.cli("diff").doc["against"] == "baseline"
        if running:
            d.stop()


def test_config_show_prints_every_key_under_its_real_name(daemon: Daemon) -> None:
    from netcfg_txn.core.config import SCHEMA

    doc = daemon.cli("config", "show").doc["config"]
    for section, keys in SCHEMA.items():
        assert set(doc[section]) == set(keys), section
    assert doc["state"]["lock_timeout"] == "5s" and doc["timer"]["default"] == "600s"
    assert doc["state"]["dir"] == str(daemon.state)


def test_try_help_summary_is_a_whole_sentence() -> None:
    p = subprocess.run([sys.executable, "-m", "netcfg_txn", "--help"], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    line = next(x for x in p.stdout.splitlines() if x.strip().startswith("try "))
    assert "(e.g." not in line and "ifreload" not in p.stdout, line


IFUPDOWN = BASE_CONFIG + '[apply]\nbackend = "ifupdown"\n'


def test_boot_rollback_bounces_nothing_and_says_none(spawn: Callable[..., Daemon]) -> None:
    """The plan names eth1 (ifupdown parses the files); nothing ifup/ifdown ever runs here: the
    daemon is killed before any rollback, in a network namespace of its own to be sure."""
    if shutil.which("ifup") is None or shutil.which("unshare") is None:
        pytest.skip("needs ifupdown (the backend that plans eth1) and unshare")
    d = spawn(IFUPDOWN, wrapper=("unshare", "-n"))
    assert d.cli("start", "--timeout", "1h").rc == 0
    d.path("etc/network/interfaces.d/eth1").write_text(
        "iface eth1 inet static\n    address 198.51.100.1/24\n"
    )
    assert d.cli("plan").doc["interfaces"]["down"] == ["eth1"]  # a live rollback would bounce it
    d.kill()
    assert d.cli("boot-rollback").rc == 0
    assert d.history()[0]["bounced"] == []
    st = d.cli("status", as_json=False)
    assert "boot" in st.out and "bounced" not in st.out, st.out


def test_a_hook_that_times_out_is_named_without_none(spawn: Callable[..., Daemon]) -> None:
    d = spawn(config("sleep 30").replace("[apply]\n", '[apply]\ntimeout = "1s"\n'))
    assert d.cli("start", "--timeout", "1h").rc == 0
    d.path("etc/network/interfaces.d/eth1").write_text("iface eth1 inet manual\n")
    r = d.cli("rollback", as_json=False)
    assert r.rc == 1, (r.out, r.err)
    assert "did not finish" in r.err and "timed out after 1s" in r.err, r.err
    assert "None" not in r.err + r.out
