# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure rules behind the security review's findings: secret redaction, interface names,
durations, probe targets, terminal escaping, token redaction in command lines, peer files."""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path, PurePosixPath

import pytest

from netcfg_txn.confirm.probes import TargetRefused, allowed_address
from netcfg_txn.core import config
from netcfg_txn.core.display import escape
from netcfg_txn.core.errors import BadToken, ConfigError, UsageError
from netcfg_txn.core.ifname import problem
from netcfg_txn.core.redact import redact_argv, redact_diff, redact_text
from netcfg_txn.core.targets import TargetPolicy
from netcfg_txn.host.runner import run
from netcfg_txn.net.backends import ApplyConfig, Stack, get_backend
from netcfg_txn.remote.peers import add_peer, hash_token, list_peers, load_peers
from tests.fakes import FakeRunner

# ------------------------------------------------------------------- 6: secrets in diffs

SECRETS = {
    "/etc/network/interfaces": (
        "iface wlan0 inet dhcp\n    wpa-ssid home\n    wpa-psk {s}\n    wireless-key {s}\n"
    ),
    "/etc/NetworkManager/system-connections/home.nmconnection": (
        "[wifi-security]\nkey-mgmt=wpa-psk\npsk={s}\n[802-1x]\npassword={s}\n"
        "private-key-password={s}\n[wireguard]\nprivate-key={s}\n"
        "[wireguard-peer.abc]\npreshared-key={s}\n"
    ),
    "/etc/netplan/50-wifi.yaml": (
        "network:\n  wifis:\n    wlan0:\n      access-points:\n        home:\n"
        '          password: "{s}"\n  tunnels:\n    wg0:\n      mode: wireguard\n'
        "      keys:\n        private: {s}\n      peers:\n        - keys:\n"
        "            public: PUBLICKEY\n            shared: {s}\n"
    ),
    "/etc/systemd/network/wg0.netdev": (
        "[WireGuard]\nPrivateKey={s}\n[WireGuardPeer]\nPublicKey=PUBLICKEY\nPresharedKey={s}\n"
    ),
    "/etc/wpa_supplicant/wpa_supplicant.conf": (
        'network={{\n\tssid="home"\n\tpsk="{s}"\n\tpassword="{s}"\n\twep_key0={s}\n}}\n'
    ),
    "/etc/sysconfig/network-scripts/keys-wlan0": "WPA_PSK='{s}'\nKEY1={s}\n",
    "/etc/systemd/network/wg0.key": "{s}\n",
}


@pytest.mark.parametrize("path", sorted(SECRETS))
def test_every_format_loses_its_secret_values_in_a_diff(path: str) -> None:
    import difflib

    old = SECRETS[path].format(s="OLDSECRETOLD").splitlines(keepends=True)
    new = SECRETS[path].format(s="NEWSECRETNEW").splitlines(keepends=True)
    diff = "".join(difflib.unified_diff(old, new, f"a{path}", f"b{path}"))
    shown = redact_diff(PurePosixPath(path), diff)
    assert "SECRET" not in shown, shown
    assert "<redacted>" in shown
    # what is not secret stays readable, and the change is still visible as a change
    visible = {".nmconnection": "key-mgmt=wpa-psk", "interfaces": "wpa-ssid home"}
    visible |= {".yaml": "public: PUBLICKEY", ".netdev": "PublicKey=PUBLICKEY", ".conf": "ssid"}
    for suffix, text in visible.items():
        if path.endswith(suffix):
            assert text in shown
    assert any(line.startswith("+") for line in shown.splitlines()[2:])


def test_ordinary_settings_are_not_redacted() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-address 192.0.2.1/24\n+address 192.0.2.2/24\n"
    assert redact_diff("/etc/network/interfaces", diff) == diff
    assert redact_text("ifup wlan0 failed: wpa-psk hunter2 rejected") == (
        "ifup wlan0 failed: wpa-psk <redacted> rejected"
    )
    assert redact_text("the password is wrong") == "the password is wrong"


def test_a_new_peer_may_not_read_diffs_unless_granted(tmp_path: Path) -> None:
    d = PurePosixPath("/etc/netcfg-txn/peers.d")
    plain = add_peer(d, "ctl", root=tmp_path)
    reader = add_peer(d, "auditor", operations=["status", "diff"], root=tmp_path)
    db = load_peers(d, tmp_path)
    assert db.authenticate(plain, None, "status", 0.0).peer == "ctl"
    with pytest.raises(Exception, match="may not diff"):
        db.authenticate(plain, None, "diff", 0.0)
    assert db.authenticate(reader, None, "diff", 0.0).peer == "auditor"


# ----------------------------------------------------------- 9: interface names to commands


@pytest.mark.parametrize(
    "name",
    ["-aiFILE", "--all", "", "a" * 16, ".", "..", "a/b", "eth 0", "eth0:1", "a\tb", "x\x1b[2J"],
)
def test_names_the_kernel_or_a_tool_would_misread_are_refused(name: str) -> None:
    assert problem(name) is not None


@pytest.mark.parametrize("name", ["eth0", "br-lan.10", "wlp0s20f3", "a" * 15, "$(id>x)", "é0"])
def test_kernel_valid_names_pass(name: str) -> None:
    assert problem(name) is None


def test_ifupdown_never_runs_a_stanza_name_as_an_option() -> None:
    backend = get_backend(Stack.IFUPDOWN, ApplyConfig())
    r = FakeRunner()
    results = backend.down(["-aiFILE", "eth0"], r)
    assert not results[0].ok and "starts with '-'" in (results[0].error or "")
    assert results[1].ok
    assert r.calls == [("ifdown", "--force", "--", "eth0")]  # old code: ifdown --force -aiFILE
    assert backend.up(["eth0:1"], r)[0].ok  # ifupdown's alias labels are its own names


def test_command_backend_never_turns_a_name_into_shell_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name goes to sh as "$1": no quoting around {ifname} in the template can make it code."""
    monkeypatch.chdir(tmp_path)
    settings = ApplyConfig(
        backend="command",
        down_command='echo "x{ifname}" > down.out',
        up_command="echo 'y{ifname}' {ifname} > up.out",
    )
    backend = get_backend(Stack.COMMAND, settings)
    name = "$(touch>pwn)"
    assert problem(name) is None  # a name the kernel accepts
    assert backend.down([name], run)[0].ok
    assert backend.up([name], run)[0].ok
    assert not (tmp_path / "pwn").exists()  # old code: the substitution ran
    assert (tmp_path / "down.out").read_text() == f"x{name}\n"
    assert (tmp_path / "up.out").read_text() == f"y{name} {name}\n"


# ------------------------------------------------------------------------ 11: durations


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, 1e999, "9" * 400, 10**400, "1" * 70 + "s"]
)
def test_non_finite_and_absurd_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        config.parse_duration(value)  # type: ignore[arg-type]


def test_timer_settings_refuse_nan_and_enforce_a_minimum() -> None:
    with pytest.raises(ConfigError, match=r"\[timer\] max"):
        config.parse([("x.toml", "[timer]\nmax = nan\n")])
    with pytest.raises(ConfigError, match=r"\[timer\] default"):
        config.parse([("x.toml", "[timer]\ndefault = inf\n")])
    cfg = config.parse([("x.toml", "")])
    assert cfg.timeout_min_s == 5.0
    for bad in (0.001, 4.9, math.nan, math.inf):
        with pytest.raises(UsageError):
            cfg.check_timeout(bad)
    assert cfg.check_timeout(5.0) == 5.0
    low = config.parse([("x.toml", '[timer]\nmin = "1s"\n')])
    assert low.check_timeout(1.0) == 1.0
    with pytest.raises(ConfigError, match=r"\[timer\] min: longer than"):
        config.parse([("x.toml", '[timer]\nmin = "10m"\ndefault = "2m"\n')])


# ------------------------------------------------------------------------- 7: probe targets


def test_probe_targets_deny_loopback_and_link_local_unless_allowed() -> None:
    open_ = TargetPolicy()
    for addr in ("127.0.0.1", "::1", "169.254.1.1", "fe80::1", "224.0.0.1", "0.0.0.0", "::"):
        assert open_.refusal(addr) is not None, addr
    assert open_.refusal("::ffff:127.0.0.1") is not None
    assert open_.refusal("192.0.2.7") is None
    lab = TargetPolicy.from_toml(["192.0.2.0/24", "127.0.0.1/32"], "x")
    assert lab.refusal("192.0.2.7") is None and lab.refusal("127.0.0.1") is None
    assert lab.refusal("198.51.100.1") == "outside [probes] allow"
    with pytest.raises(ConfigError, match="not a CIDR"):
        TargetPolicy.from_toml(["nope"], "x")
    cfg = config.parse([("x.toml", '[probes]\nallow = ["10.0.0.0/8"]\n')])
    assert cfg.probe_targets.refusal("10.1.2.3") is None
    with pytest.raises(ConfigError, match="allow"):
        config.parse([("x.toml", "[probes]\nallow = [1]\n")])


def test_a_host_name_is_checked_by_what_it_resolves_to() -> None:
    async def main() -> None:
        with pytest.raises(TargetRefused, match="loopback"):
            await allowed_address("localhost", TargetPolicy())
        assert await allowed_address("127.0.0.1", TargetPolicy.from_toml(["127.0.0.0/8"], "x"))

    asyncio.run(main())


# ------------------------------------------------------------------ 14, 15: human output, argv


def test_terminal_controls_are_escaped() -> None:
    evil = "x\x1b]0;owned\x07\rNo transaction is open.\x9b2J\u202e"
    shown = escape(evil)
    assert shown.isprintable()
    assert shown == "x\\x1b]0;owned\\x07\\x0dNo transaction is open.\\x9b2J\\u202e"
    assert escape("é\tok\nnext") == "é\tok\nnext"


def test_tokens_on_a_command_line_are_redacted() -> None:
    argv = ["netcfg-txn", "commit", "--token", "T0K", "--id", "x", "--peer-token=P3"]
    shown = redact_argv(argv)
    assert "T0K" not in shown and "--peer-token=P3" not in shown
    assert shown[:4] == ["netcfg-txn", "commit", "--token", "<redacted>"]
    assert redact_argv(["start", "--token-file", "/root/t"]) == ["start", "--token-file", "/root/t"]


# ----------------------------------------------------------------- 18: one token, two names


def test_two_peer_files_with_one_token_are_both_refused(tmp_path: Path) -> None:
    d = PurePosixPath("/etc/netcfg-txn/peers.d")
    token = add_peer(d, "ansible", root=tmp_path)
    folder = tmp_path / "etc/netcfg-txn/peers.d"
    copy = folder / "old-laptop.toml"
    copy.write_text((folder / "ansible.toml").read_text().replace("ansible", "old-laptop"))
    os.chmod(copy, 0o600)
    db = list_peers(d, root=tmp_path)
    assert db.names() == ()
    assert any("ansible, old-laptop have the same token_sha256" in p for p in db.problems)
    with pytest.raises(BadToken):
        db.authenticate(token, None, "confirm", 0.0)
    with pytest.raises(ConfigError, match="same token_sha256"):
        load_peers(d, tmp_path)  # the strict load (peer list) says so too
    assert hash_token(token) in (folder / "ansible.toml").read_text()


# ------------------------------------------------------------- 13: structured subject match


def test_subjects_are_compared_as_structures() -> None:
    from netcfg_txn.remote.peers import subject_matches
    from netcfg_txn.remote.subject import format_dn, subject_attrs

    spoof = {"subject": ((("organizationName", "t"),), (("commonName", "mallory,CN=ansible"),))}
    attrs = subject_attrs(spoof)
    assert attrs == (("CN", "mallory,CN=ansible"), ("O", "t"))
    assert not subject_matches("ansible", attrs)
    assert not subject_matches("CN=mallory,CN=ansible,O=t", attrs)
    assert subject_matches("CN=mallory\\,CN=ansible,O=t", attrs)
    assert format_dn(attrs) == "CN=mallory\\,CN=ansible,O=t"
    two_cns = {"subject": ((("commonName", "ansible"),), (("commonName", "mallory"),))}
    assert not subject_matches("ansible", subject_attrs(two_cns))  # exactly one CN
    multi = {"subject": ((("organizationName", "c"),), (("commonName", "a"), ("OU", "b")))}
    assert subject_matches("CN=a+OU=b,O=c", subject_attrs(multi))
    ok = {"subject": ((("organizationName", "t"),), (("commonName", "ansible"),))}
    assert subject_matches("ansible", subject_attrs(ok))
    assert subject_matches("cn=ansible, o=t", subject_attrs(ok))


def test_a_peer_file_with_a_malformed_subject_is_refused() -> None:
    from netcfg_txn.remote.peers import peer_from_toml

    table = {"name": "p", "token_sha256": "0" * 64, "client_subject": "CN=a,O"}
    with pytest.raises(ConfigError, match="client_subject"):
        peer_from_toml(table, "p.toml")
