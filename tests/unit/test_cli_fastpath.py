# SPDX-License-Identifier: GPL-3.0-or-later
"""The fast path (the verbs that talk to the daemon, without click) against the click tree: for
every form it accepts, the same request, the same stdout, stderr and exit code; every other form
is left to click; its table of options cannot drift from the click commands."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netcfg_txn.cli import fastpath, main
from netcfg_txn.cli.output import Output
from tests.unit.test_api_client import OneShotServer, _http

TXN = {"id": "t1", "phase": "open", "created_wall_s": 1.7e9, "actor": "root", "file_count": 3,
       "deadline_wall_s": 1.7e9 + 60, "remaining_s": 59.0, "label": "x\x1b[2J"}  # fmt: skip
REPLIES = {
    "idle": (200, {"ok": True, "state": "idle", "pending": ["/etc/a"], "last": None}),
    "open": (200, {"ok": True, "state": "open", "transaction": TXN, "edited": ["/etc/b"]}),
    "failed-last": (
        200,
        {
            "ok": True,
            "state": "idle",
            "last": {
                "id": "t0",
                "outcome": "failed",
                "reason": "timeout",
                "ended_wall_s": 1.7e9,
                "bounced": ["eth0"],
            },
        },
    ),  # fmt: skip
    "committed": (200, {"ok": True, "transaction": TXN, "changed": ["/etc/b"]}),
    "rolled-back": (
        200,
        {
            "ok": True,
            "transaction": {**TXN, "phase": "rolled-back"},
            "changed": ["/etc/b"],
            "edited_after_apply": ["/etc/c"],
        },
    ),  # fmt: skip
    "none": (
        404,
        {
            "ok": False,
            "error": {"code": "no-transaction", "message": "none open", "hint": "start one"},
        },
    ),  # fmt: skip
    "started": (
        200,
        {
            "ok": True,
            "transaction": {**TXN, "timeout_s": 60.0},
            "token": "tok",
            "warnings": ["baseline \x1b[1mmissing"],
        },
    ),  # fmt: skip
    "extended": (200, {"ok": True, "transaction": TXN}),
    "diff": (
        200,
        {
            "ok": True,
            "against": "snapshot",
            "files": [
                {
                    "path": "/etc/b",
                    "change": "modified",
                    "diff": "--- /etc/b\n+++ /etc/b\n-a\n+b\n",
                },
                {"path": "/etc/c", "change": "type", "detail": "now a symlink"},
            ],
        },
    ),  # fmt: skip
    "no-diff": (200, {"ok": True, "against": "baseline", "files": []}),
    "plan": (
        200,
        {
            "ok": True,
            "transaction": "t1",
            "backend": "ifupdown",
            "untouched": 2,
            "files": [{"action": "restore", "path": "/etc/b"}],
            "interfaces": {"down": ["eth0"], "delete": [], "up": ["eth0"]},
            "unattributed": ["/etc/x"],
            "notes": ["n"],
        },
    ),  # fmt: skip
    "history": (
        200,
        {
            "ok": True,
            "history": [
                {
                    "id": "t0",
                    "phase": "rolled-back",
                    "reason": "timeout",
                    "label": "l",
                    "ended_wall_s": 1.7e9,
                    "changed": ["/etc/b"],
                    "bounced": ["eth0"],
                    "edited_after_apply": ["/etc/c"],
                    "errors": ["e"],
                }
            ],
        },
    ),  # fmt: skip
    "rollback-failed": (
        500,
        {
            "ok": False,
            "error": {
                "code": "failed",
                "message": "restore failed",
                "details": {"changed": ["/etc/b"]},
            },
        },
    ),  # fmt: skip
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "netcfg-txn.toml"
    cfg.write_text('[files]\npresets = []\ninclude = ["/etc/x/*"]\n[apply]\nbackend = "none"\n')
    return cfg


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[[str], OneShotServer]]:
    made: list[OneShotServer] = []

    def start(reply: str) -> OneShotServer:
        status, doc = REPLIES[reply]
        made.append(OneShotServer(tmp_path / f"sock{len(made)}", _http(status, doc)))
        return made[-1]

    yield start
    for s in made:
        s.close()


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main.run(args)
        rc = 0
    except SystemExit as e:
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


FORMS = [
    ("idle", ["status"]),
    ("idle", ["--json", "status"]),
    ("open", ["status", "--json"]),
    ("open", ["status"]),
    ("failed-last", ["status"]),
    ("failed-last", ["--json", "status"]),
    ("committed", ["commit"]),
    ("committed", ["confirm", "--json", "--id", "t1", "--token=tok", "--force"]),
    ("none", ["commit"]),
    ("none", ["--json", "commit"]),
    ("rolled-back", ["rollback", "--force"]),
    ("rolled-back", ["rollback", "--token", "tok", "--json"]),
    ("rollback-failed", ["rollback"]),
    ("rollback-failed", ["--json", "rollback", "--id", "t1"]),
    ("started", ["start"]),
    ("started", ["start", "--timeout", "1h", "--label", "bench", "--allow-pending"]),
    ("started", ["--json", "start", "--timeout=90", "--label=x y"]),
    ("none", ["start", "--timeout", "5m"]),
    ("extended", ["extend", "--timeout", "1h"]),
    ("extended", ["extend", "--timeout", "1h", "--force", "--id", "t1", "--token", "tok"]),
    ("none", ["--json", "extend", "--timeout=2m"]),
    ("diff", ["diff"]),
    ("no-diff", ["diff", "--json"]),
    ("plan", ["plan"]),
    ("plan", ["--json", "plan"]),
    ("history", ["history"]),
    ("history", ["history", "--limit", "5"]),
    ("history", ["history", "--limit=1000", "--json"]),
]


@pytest.mark.parametrize(("reply", "verb_args"), FORMS)
def test_the_fast_path_behaves_as_click_does(
    reply: str,
    verb_args: list[str],
    server: Callable[[str], OneShotServer],
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = []
    for fast in (True, False):
        srv = server(reply)
        args = ["--socket", str(srv.path), "--config", str(config), *verb_args]
        assert fastpath._parse(args) is not None  # a plain form: the fast path takes it
        if not fast:
            monkeypatch.setattr(fastpath, "run", lambda _a, _o: False)
        results.append((_run(args, capsys), srv.requests))
        monkeypatch.undo()
    (fast_result, fast_requests), (click_result, click_requests) = results
    assert fast_result == click_result
    assert fast_requests == click_requests and len(fast_requests) == 1
    if "--json" in verb_args:
        assert isinstance(json.loads(fast_result[1])["ok"], bool)  # exactly one document
    assert "\x1b" not in fast_result[1] + fast_result[2]  # terminal controls escaped


def test_the_socket_and_token_come_from_the_environment_as_with_click(
    server: Callable[[str], OneShotServer],
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    srv = server("committed")
    monkeypatch.setenv("NETCFG_TXN_SOCKET", str(srv.path))
    monkeypatch.setenv("NETCFG_TXN_TOKEN", "from-env")
    assert _run(["--config", str(config), "commit"], capsys)[0] == 0
    assert b"\r\nX-Netcfg-Txn-Token: from-env\r\n" in srv.requests[0]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["status", "-h"],
        ["--version", "status"],
        ["status", "--version"],
        ["--version", "--version"],
        ["status", "--force"],
        ["status", "extra"],
        ["commit", "--id"],
        ["commit", "--id", "--force"],
        ["commit", "--id="],
        ["--socket"],
        ["--socket", "/s", "--socket", "/t", "status"],
        ["--json", "--json", "status"],
        ["--token", "t", "commit"],
        ["commit", "--socket", "/s"],
        ["rollback", "--force", "--force"],
        ["--", "status"],
        ["stat"],
        ["extend"],
        ["extend", "--timeout", "soon"],
        ["start", "--timeout", "0"],
        ["start", "--timeout", "-1h"],
        ["start", "--probe", "tcp:192.0.2.1:22"],
        ["start", "--policy", "either"],
        ["start", "--label", "-x"],
        ["start", "--token-file", "/"],
        ["history", "--limit", "0"],
        ["history", "--limit", "1001"],
        ["history", "--limit", "+5"],
        ["history", "--limit", "\u0661"],
        ["diff", "--limit", "5"],
        ["plan", "extra"],
        ["config"],
        ["config", "--json", "check"],
        ["config", "check", "extra"],
        ["config", "bogus"],
        ["config check"],
        ["--config", "/a", "boot-rollback", "--config", "/b"],
        ["boot-rollback", "--socket", "/s"],
        ["boot-rollback", "--id", "x"],
        ["check"],
        ["status", "config", "check"],
    ],
)
def test_every_other_form_is_left_to_click(args: list[str]) -> None:
    assert fastpath._parse(args) is None
    assert fastpath.run(args, Output(False)) is False


def test_the_fast_path_does_not_import_click_or_ssl() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from netcfg_txn.cli.main import run\n"
        "try: run(['--socket', '/nonexistent/sock', 'commit'])\n"
        "except SystemExit: pass\n"
        "print(sorted(m for m in ('click', 'ssl', 'http.client', 'email') if m in sys.modules))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "[]", p.stdout + p.stderr


def test_version_is_what_click_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert fastpath._parse(["--socket", "/s", "--version"]) is not None
    fast = _run(["--socket", "/s", "--version"], capsys)
    from netcfg_txn.cli.group import run_click

    try:
        run_click(["--version"], Output(False))
    except SystemExit as e:
        assert not e.code
    assert fast == (0, *capsys.readouterr()) and fast[1].startswith("netcfg-txn, version ")


def _click_options(cmd: object) -> tuple[set[str], set[str]]:
    """(long options that take a value, flags) of a click command, help and --json aside."""
    import click

    assert isinstance(cmd, click.Command)
    values: set[str] = set()
    flags: set[str] = set()
    for p in cmd.params:
        if isinstance(p, click.Option):
            names = {o for o in p.opts if o.startswith("--")} - {"--help", "--json"}
            (flags if p.is_flag else values).update(names)
    return values, flags


# What the fast path leaves to click on purpose: the probe options are checked against the
# probe syntax, which only the click path imports.
LEFT_TO_CLICK = {"start": {"--probe", "--probe-failure", "--policy", "--probe-setting"}}


def test_the_fast_path_table_matches_the_click_commands() -> None:
    import click

    from netcfg_txn.cli.group import cli

    values, flags = _click_options(cli)
    assert values == fastpath.GLOBAL_VALUES and flags == {fastpath.VERSION}
    for verb, (fast_values, fast_flags) in fastpath.VERBS.items():
        cmd: object = cli
        for word in verb.split():  # "config check": a command of the config group
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[word]
        click_values, click_flags = _click_options(cmd)
        assert fast_flags == click_flags, verb
        assert fast_values | LEFT_TO_CLICK.get(verb, set()) == click_values, verb


@pytest.mark.parametrize(
    "verb_args",
    [["config", "check"], ["config", "show"], ["--json", "config", "show"],
     ["config", "check", "--json"]],
)  # fmt: skip
@pytest.mark.parametrize("text", ['[timer]\ndefault = "2m"\n', "[files\n", "[bogus]\n"])
def test_config_check_and_show_behave_as_click_does(
    verb_args: list[str],
    text: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = tmp_path / "netcfg-txn.toml"
    cfg.write_text(text)
    args = ["--config", str(cfg), "--state-dir", str(tmp_path / "state"), *verb_args]
    assert fastpath._parse(args) is not None
    fast = _run(args, capsys)
    monkeypatch.setattr(fastpath, "run", lambda _a, _o: False)
    assert _run(args, capsys) == fast


CLI = """
import sys
from netcfg_txn.cli import fastpath, main
if sys.argv[1] == "click":
    fastpath.run = lambda _args, _out: False
main.run(sys.argv[2:])
"""


def _cli(path: str, args: list[str]) -> tuple[int, str, str]:
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", CLI, path, *args], capture_output=True, text=True,
                       timeout=60, env={"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": ""})  # fmt: skip
    return p.returncode, p.stdout, p.stderr


def test_boot_rollback_behaves_as_click_does(tmp_path: Path, config: Path) -> None:
    import fcntl
    import os

    state = tmp_path / "state"
    where = ["--config", str(config), "--root", str(tmp_path / "root"), "--state-dir", str(state)]
    forms = [[*where, "boot-rollback"], ["--json", "boot-rollback", *where],
             ["boot-rollback", *where[:2], "--json", *where[2:]]]  # fmt: skip
    assert all(fastpath._parse(args) is not None for args in forms)
    for args in forms:  # the first run creates the state directory (through the engine)
        fast, slow = _cli("fast", args), _cli("click", args)
        assert fast == slow and fast[0] == 0, fast
    assert "Nothing to roll back." in _cli("fast", forms[0])[1]
    fd = os.open(state / "daemon.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as netcfg-txnd does
        for args in forms:
            fast = _cli("fast", args)
            assert fast == _cli("click", args) and fast[0] == 75, fast
    finally:
        os.close(fd)
