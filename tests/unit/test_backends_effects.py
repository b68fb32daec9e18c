# SPDX-License-Identifier: GPL-3.0-or-later
"""down/up/reload/usable of every backend against a recording FakeRunner: exact argv, and a
failing command yields a failed StepResult while the rest still run (R17, R25)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netcfg_txn.core.errors import CommandFailed
from netcfg_txn.core.model import StepResult
from netcfg_txn.net.backends import ApplyConfig, Stack, get_backend
from netcfg_txn.net.backends.netplan import Netplan
from tests.fakes import FakeRunner, failed

NAMES = ["br0", "eth4"]
SH = ("/bin/sh", "-c", 'command -v "$1"', "sh")


@pytest.mark.parametrize(
    ("stack", "down", "up", "reload"),
    [
        (Stack.IFUPDOWN, ["ifdown", "--force", "--"], ["ifup", "--"], []),
        (Stack.IFUPDOWN2, ["ifdown"], ["ifup"], []),
        (Stack.IFCFG, ["ifdown"], ["ifup"], []),
        (
            Stack.NETWORKD,
            ["networkctl", "down", "--"],
            ["networkctl", "reconfigure", "--"],
            [("networkctl", "reload")],
        ),
        (
            Stack.NETWORKMANAGER,
            ["nmcli", "device", "disconnect"],
            ["nmcli", "connection", "up", "ifname"],  # no connection id known
            [("nmcli", "connection", "reload")],
        ),
    ],
)
def test_exact_commands(
    stack: Stack, down: list[str], up: list[str], reload: list[tuple[str, ...]]
) -> None:
    backend = get_backend(stack, ApplyConfig())
    run = FakeRunner()
    assert backend.down(NAMES, run) == [StepResult("down", n, True) for n in NAMES]
    assert backend.reload(run) == [StepResult("reload", " ".join(r), True) for r in reload]
    assert backend.up(NAMES[::-1], run) == [StepResult("up", n, True) for n in NAMES[::-1]]
    assert run.calls == [
        *(tuple(down + [n]) for n in NAMES),
        *reload,
        *(tuple(up + [n]) for n in NAMES[::-1]),
    ]


@pytest.mark.parametrize("stack", [s for s in Stack if s is not Stack.COMMAND])
def test_a_failing_command_is_reported_and_the_rest_still_run(stack: Stack) -> None:
    backend = get_backend(stack, ApplyConfig())
    probe = FakeRunner()
    backend.down(["eth0"], probe)
    first = probe.effects()[-1]  # the command that takes eth0 down
    run = FakeRunner({first: failed(first, 1, "eth0: no such device")})
    results = backend.down(["eth0", "eth1"], run)
    assert [(r.target, r.ok) for r in results] == [("eth0", False), ("eth1", True)]
    assert "failed (1): eth0: no such device" in (results[0].error or "")
    assert run.effects()[-1][-1] == "eth1"


def test_a_missing_tool_or_timeout_is_a_failed_step_too() -> None:
    argv = ("ifup", "--", "eth0")
    run = FakeRunner({argv: CommandFailed(argv, 127, "ifup: command not found")})
    results = get_backend(Stack.IFUPDOWN, ApplyConfig()).up(["eth0", "eth1"], run)
    assert results[0] == StepResult(
        "up", "eth0", False, "ifup -- eth0 failed (127): ifup: command not found"
    )
    assert results[1].ok


def test_networkmanager_activates_by_connection_id() -> None:
    nm = get_backend(Stack.NETWORKMANAGER, ApplyConfig())
    run = FakeRunner()
    nm.up(["eth1", "eth0"], run, connection_ids={"eth1": "Wired connection 1"})
    assert run.calls == [
        ("nmcli", "connection", "up", "id", "Wired connection 1"),
        ("nmcli", "connection", "up", "ifname", "eth0"),
    ]


NM_STATUS = ("nmcli", "-t", "general", "status")
NETWORKD_LIST = ("networkctl", "--no-pager", "--no-legend", "list")


def test_netplan_reload_regenerates_then_reloads_the_running_renderers(tmp_path: Path) -> None:
    # A fake root: reload copies generated files into ROOT/run (see test_netplan_generate.py).
    netplan = Netplan(ApplyConfig(), root=tmp_path)
    run = FakeRunner({NM_STATUS: failed(NM_STATUS, 8, "NetworkManager is not running")})
    assert [r.ok for r in netplan.reload(run)] == [True, True]
    effects = run.effects()
    assert effects[0][:3] == ("netplan", "generate", "--root-dir")  # into a staging root
    assert effects[1:] == [NM_STATUS, ("networkctl", "reload")]

    nm_only = FakeRunner({("networkctl", "reload"): failed(("networkctl", "reload"))})
    steps = netplan.reload(nm_only)  # networkd not running is fine when NetworkManager renders
    assert [(s.target, s.ok) for s in steps] == [
        ("netplan generate", True),
        ("nmcli connection reload", True),
    ]


def test_netplan_routes_each_interface_to_its_renderer() -> None:
    netplan = get_backend(Stack.NETPLAN, ApplyConfig())
    run = FakeRunner()
    netplan.up(["eth0", "wlan0"], run, connection_ids={"wlan0": "netplan-wlan0"})
    netplan.down(["wlan0", "eth0"], run, connection_ids={"wlan0": "netplan-wlan0"})
    assert [c for c in run.effects() if c not in (NM_STATUS, NETWORKD_LIST)] == [
        ("networkctl", "reconfigure", "--", "eth0"),
        ("nmcli", "connection", "up", "id", "netplan-wlan0"),
        ("nmcli", "device", "disconnect", "wlan0"),
        ("networkctl", "down", "--", "eth0"),
    ]


def test_netplan_without_networkd_sends_unlabelled_interfaces_to_networkmanager() -> None:
    netplan = get_backend(Stack.NETPLAN, ApplyConfig())
    run = FakeRunner({NETWORKD_LIST: failed(NETWORKD_LIST, 1, "Failed to connect system bus")})
    netplan.up(["eth0"], run)
    assert run.effects()[-1] == ("nmcli", "connection", "up", "ifname", "eth0")


def test_command_stack_passes_the_name_as_a_positional_parameter() -> None:
    settings = ApplyConfig(
        backend="command",
        down_command="ip link set {ifname} down",
        up_command="ifup {ifname} && logger up {ifname}",
        reload_command="systemctl reload my-network",
    )
    cmd = get_backend(Stack.COMMAND, settings)
    run = FakeRunner()
    cmd.down(["eth0", "odd;name"], run)
    cmd.reload(run)
    cmd.up(["eth0"], run)
    assert run.calls == [
        ("/bin/sh", "-c", 'ip link set "$1" down', "netcfg-txn", "eth0"),
        ("/bin/sh", "-c", 'ip link set "$1" down', "netcfg-txn", "odd;name"),
        ("/bin/sh", "-c", "systemctl reload my-network"),
        ("/bin/sh", "-c", 'ifup "$1" && logger up "$1"', "netcfg-txn", "eth0"),
    ]


def test_command_stack_without_commands_does_nothing() -> None:
    cmd = get_backend(Stack.COMMAND, ApplyConfig(backend="command", reload_command="true"))
    run = FakeRunner()
    assert cmd.down(["eth0"], run) == [] and cmd.up(["eth0"], run) == []
    assert run.calls == []


def test_usable_names_the_missing_tool() -> None:
    run = FakeRunner({(*SH, "nmcli"): failed((*SH, "nmcli"))})
    assert (
        get_backend(Stack.NETWORKMANAGER, ApplyConfig()).why_unusable(run)
        == "nmcli not found in PATH"
    )


def test_usable_says_why_the_daemon_does_not_answer() -> None:
    run = FakeRunner({NM_STATUS: failed(NM_STATUS, 8, "Error: NetworkManager is not running.")})
    why = get_backend(Stack.NETWORKMANAGER, ApplyConfig()).why_unusable(run)
    assert why == "nmcli -t general status failed (8): Error: NetworkManager is not running."


@pytest.mark.parametrize("stack", list(Stack))
def test_usable_when_everything_answers(stack: Stack) -> None:
    settings = ApplyConfig(backend="command", up_command="ifup {ifname}")
    assert get_backend(stack, settings).why_unusable(FakeRunner()) is None


def test_command_usable_checks_the_configured_programs() -> None:
    settings = ApplyConfig(backend="command", up_command="my-ifup {ifname}")
    run = FakeRunner({(*SH, "my-ifup"): failed((*SH, "my-ifup"))})
    assert get_backend(Stack.COMMAND, settings).why_unusable(run) == "my-ifup not found in PATH"
