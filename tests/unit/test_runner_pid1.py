# SPDX-License-Identifier: GPL-3.0-or-later
"""Network tools run as from a root shell: through PID 1 (``systemd-run --wait --pipe``) when
systemd runs the host we act on, directly otherwise. A stand-in ``systemd-run`` on PATH records
its arguments and runs the command, so the output, exit code and error naming are checked here;
the booted-systemd proof is tests/system/test_dhcp_rollback.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netcfg_txn.core.errors import CommandFailed
from netcfg_txn.host import runner

FAKE = """#!/bin/sh
printf '%s\\n' "$@" > "$RECORD"
while [ "$1" != "--" ]; do shift; done
shift
exec "$@"
"""


@pytest.fixture
def fake_pid1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "systemd-run"
    tool.write_text(FAKE.replace("$RECORD", str(tmp_path / "args")))
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(runner, "pid1_can_run_for_us", lambda: True)
    return tmp_path / "args"


def test_through_pid1_output_and_exit_code_come_back(fake_pid1: Path) -> None:
    done = runner.run_as_admin(["sh", "-c", "echo out; echo err >&2"], timeout_s=30)
    assert done.argv == ("sh", "-c", "echo out; echo err >&2")
    assert done.stdout == "out\n" and done.stderr == "err\n" and done.returncode == 0
    args = fake_pid1.read_text().splitlines()
    assert args[:6] == ["--wait", "--pipe", "--collect", "--quiet", "--service-type=exec",
                        "--description=netcfg-txn: sh -c 'echo out; echo err >&2'"]  # fmt: skip
    assert "KillMode=process" in args and "RuntimeMaxSec=30" in args
    assert args[args.index("--") + 1 :] == ["sh", "-c", "echo out; echo err >&2"]


def test_through_pid1_a_failure_names_the_tool_not_systemd_run(fake_pid1: Path) -> None:
    with pytest.raises(CommandFailed) as e:
        runner.run_as_admin(["sh", "-c", "echo 'ifup: no such interface' >&2; exit 3"])
    assert e.value.argv[0] == "sh" and e.value.returncode == 3
    assert "ifup: no such interface" in e.value.message and "systemd-run" not in e.value.message
    assert runner.run_as_admin(["sh", "-c", "exit 4"], check=False).returncode == 4


def test_without_systemd_as_pid1_the_tool_runs_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "pid1_can_run_for_us", lambda: False)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")  # no systemd-run there
    assert runner.run_as_admin(["sh", "-c", "echo direct"]).stdout == "direct\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount and network namespaces)")
def test_pid1_is_not_used_from_another_network_namespace() -> None:
    """As in the netns test tiers: systemd's marker is there, but our network namespace is not
    PID 1's, so a transient unit would act on the wrong interfaces: run directly."""
    probe = (
        "from netcfg_txn.host import runner; import os; "
        "print(os.path.isdir('/run/systemd/system'), runner.pid1_can_run_for_us())"
    )
    script = (
        "mount --make-rprivate / && mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system"
        f' && exec "$0" -c "{probe}"'
    )
    out = subprocess.run(
        ["unshare", "-m", "-n", "sh", "-c", script, sys.executable],
        capture_output=True, text=True, timeout=30, env={**os.environ, "INVOCATION_ID": "x"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"], out.stdout


def test_a_bus_not_up_yet_is_asked_again_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([None, True])  # early at boot: no D-Bus yet; later: PID 1 runs units for us
    monkeypatch.setattr(runner, "_pid1_decided", None)
    monkeypatch.setattr(runner, "_ask_pid1", lambda: next(answers))
    assert runner.pid1_can_run_for_us() is False
    assert runner.pid1_can_run_for_us() is True
    assert runner.pid1_can_run_for_us() is True  # decided: not asked a third time
