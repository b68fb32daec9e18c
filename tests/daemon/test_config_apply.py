# SPDX-License-Identifier: GPL-3.0-or-later
"""``[apply]`` is checked when the config is parsed, not when a rollback first runs a command:
a ``down_command`` without ``{ifname}`` is refused by ``config check`` and by the daemon, naming
the file and the key, and no transaction starts on it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.daemon.harness import BASE_CONFIG, Daemon

pytestmark = pytest.mark.timeout(120)

BAD_APPLY = (
    '[apply]\nbackend = "command"\ndown_command = "ip link set eth0 down"\n'
    'up_command = "ip link set {ifname} up"\n'
)


def test_config_check_names_the_file_and_key_of_a_bad_down_command(
    spawn: Callable[..., Daemon],
) -> None:
    d = spawn(start=False)
    confd = d.config.parent / "conf.d"
    confd.mkdir()
    bad_file = confd / "30-apply.toml"
    bad_file.write_text(BAD_APPLY)
    r = d.cli("config", "check")
    assert r.rc == 78, r.out
    assert r.doc["error"]["message"] == f"{bad_file}: [apply] down_command: must contain {{ifname}}"
    human = d.cli("config", "check", as_json=False)
    assert human.rc == 78 and f"{bad_file}: [apply] down_command" in human.err


def test_the_daemon_shows_it_and_starts_nothing_on_it(spawn: Callable[..., Daemon]) -> None:
    d = spawn(BASE_CONFIG + '[apply]\nbackend = "none"\n')
    d.kill()
    d.config.write_text(BASE_CONFIG + BAD_APPLY)
    d.start()
    message = f"{d.config}: [apply] down_command: must contain {{ifname}}"
    assert d.cli("status").doc["config_error"] == message
    state = d.state_digest()
    r = d.cli("start")
    assert r.rc == 78 and message in r.doc["error"]["message"], r.out
    assert d.state_digest() == state
