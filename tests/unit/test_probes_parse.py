# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcfg_txn.confirm.probes import (
    ConfirmPolicy,
    Policy,
    Probe,
    ProbeKind,
    ProbeSettings,
    parse_confirm,
    parse_probe,
)
from netcfg_txn.core.errors import BadRequest, ConfigError


@pytest.mark.parametrize(
    ("spec", "kind", "target", "port"),
    [
        ("tcp:198.51.100.1:22", ProbeKind.TCP, "198.51.100.1", 22),
        ("tcp:[2001:db8::1]:443", ProbeKind.TCP, "2001:db8::1", 443),
        ("tcp:gw.example.net:53", ProbeKind.TCP, "gw.example.net", 53),
        ("icmp:192.0.2.1", ProbeKind.ICMP, "192.0.2.1", 0),
        ("icmp:2001:db8::1", ProbeKind.ICMP, "2001:db8::1", 0),
        ("iface:eth0", ProbeKind.IFACE, "eth0", 0),
        ("iface:br-lan.100", ProbeKind.IFACE, "br-lan.100", 0),
        ("http://192.0.2.1/health", ProbeKind.HTTP, "http://192.0.2.1/health", 80),
        ("https://ctl.example:8443/x?y=1", ProbeKind.HTTP, "https://ctl.example:8443/x?y=1", 8443),
        ("https://[2001:db8::2]/", ProbeKind.HTTP, "https://[2001:db8::2]/", 443),
    ],
)
def test_good_specs(spec: str, kind: ProbeKind, target: str, port: int) -> None:
    p = parse_probe(spec)
    assert (p.kind, p.target, p.port, p.spec) == (kind, target, port, spec)
    assert p.timeout_s is None and p.retries is None


def test_options() -> None:
    p = parse_probe("tcp:192.0.2.1:22 timeout=500ms retries=0")
    assert (p.timeout_s, p.retries) == (0.5, 0)
    h = parse_probe("https://ctl.example/hook expect=200,204-206 method=HEAD timeout=2")
    assert h.expect == ((200, 200), (204, 206)) and h.method == "HEAD" and h.timeout_s == 2.0
    c = parse_probe('https://ctl.example/callhome json={"host": "h1", "ok": true}')
    assert c.method == "POST" and c.body == '{"host": "h1", "ok": true}'
    assert c.expect == ((200, 299),)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "   ",
        "tcp:",
        "tcp:host",
        "tcp:host:0",
        "tcp:host:65536",
        "tcp:host:22:33",
        "tcp:[192.0.2.1]:22",
        "tcp:-oProxyCommand=x:22",
        "icmp:",
        "icmp:-f",
        "icmp:-c100 192.0.2.1",
        "icmp:a b",
        "icmp:bad_host!",
        "iface:",
        "iface:a/b",
        "iface:..",
        "iface:" + "x" * 16,
        "udp:192.0.2.1:53",
        "ftp://x/",
        "http://",
        "http://user:pw@host/",
        "http://[::1/",
        "http://host:99999/",
        "http://-bad/",
        "http://host/ expect=600",
        "http://host/ expect=299-200",
        "http://host/ method=DELETE",
        "http://host/ json={bad",
        "http://host/ json={} method=GET",
        "tcp:192.0.2.1:22 expect=200",
        "tcp:192.0.2.1:22 timeout=0",
        "tcp:192.0.2.1:22 timeout=1h",
        "tcp:192.0.2.1:22 retries=99",
        "tcp:192.0.2.1:22 retries=1 retries=2",
        "tcp:192.0.2.1:22 colour=blue",
        "tcp:192.0.2.1:22 junk",
        "tcp:192.0.2.1:22\n",
        "icmp:192.0.2.1\x00",
        "x" * 3000,
    ],
)
def test_bad_specs(spec: str) -> None:
    with pytest.raises(BadRequest):
        parse_probe(spec)


def test_non_string_spec() -> None:
    with pytest.raises(BadRequest):
        parse_probe(22)  # type: ignore[arg-type]


@settings(max_examples=1500, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_only_bad_request(spec: str) -> None:
    try:
        p = parse_probe(spec)
    except BadRequest:
        return
    assert isinstance(p, Probe) and p.spec == spec


_prefix = st.sampled_from(["tcp:", "icmp:", "iface:", "http://", "https://", "tcp:["])
_junk = st.text(alphabet='[]:/@.-_ =,%?#{}"0123456789abcdefABCDEF\\', max_size=60)


@settings(max_examples=1500, deadline=None)
@given(_prefix, _junk)
def test_near_miss_specs_only_bad_request(prefix: str, rest: str) -> None:
    try:
        parse_probe(prefix + rest)
    except BadRequest:
        pass


# ------------------------------------------------------------------------------ settings/policy


def test_settings_from_toml() -> None:
    s = ProbeSettings.from_toml(
        {"settle_s": 0, "interval_s": 2.5, "timeout_s": "1s", "retries": 0, "rounds": 3,
         "fail_fast": True}, "/etc/netcfg-txn/netcfg-txn.toml")  # fmt: skip
    assert s == ProbeSettings(0.0, 2.5, 1.0, 0, 3, True)
    assert ProbeSettings.from_toml({}, "x") == ProbeSettings()


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"settle": 1}, "settle"),
        ({"rounds": 0}, "rounds"),
        ({"rounds": True}, "rounds"),
        ({"retries": 1.5}, "retries"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"interval_s": "soon"}, "interval_s"),
        ({"fail_fast": "yes"}, "fail_fast"),
    ],
)
def test_settings_errors_name_file_and_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^cfg.toml: \[probes\] {key}: "):
        ProbeSettings.from_toml(table, "cfg.toml")


def test_an_unknown_probes_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"^cfg.toml: \[probes\] settle: unknown key"):
        ProbeSettings.from_toml({"settle": 1}, "cfg.toml")


def test_parse_confirm() -> None:
    d = ProbeSettings()
    assert parse_confirm({}, d) == ConfirmPolicy()
    c = parse_confirm(
        {"policy": "probes", "probes": ["tcp:192.0.2.1:22"], "rounds": 3, "fail_fast": True}, d
    )
    assert c.policy is Policy.PROBES and c.settings.rounds == 3 and c.settings.fail_fast
    assert c.supervised
    assert parse_confirm(c.to_json(), d) == c  # what the engine persists in Txn.policy
    with pytest.raises(BadRequest, match="needs at least one probe"):
        parse_confirm({"policy": "probes-or-manual"}, d)
    with pytest.raises(BadRequest, match="policy"):
        parse_confirm({"policy": "sometimes"}, d)
    with pytest.raises(BadRequest, match="policy"):
        parse_confirm({"policy": ["manual"]}, d)
    with pytest.raises(BadRequest, match="at most"):
        parse_confirm({"probes": ["iface:lo"] * 17}, d)
    with pytest.raises(BadRequest, match="probe_settings: rounds"):
        parse_confirm({"probe_settings": {"rounds": 0}}, d)
    with pytest.raises(BadRequest):
        parse_confirm({"probes": "tcp:192.0.2.1:22"}, d)
    # given probes always run: under manual they are health checks, a failure rolls back
    c = parse_confirm({"probes": ["iface:lo"]}, d)
    assert c.supervised and c.rollback_on_failure and c.settings.on_failure == "rollback"
    c = parse_confirm({"probes": ["iface:lo"], "probe_settings": {"on_failure": "ignore"}}, d)
    assert c.supervised and not c.rollback_on_failure
    assert c.to_json()["probe_settings"]["on_failure"] == "ignore"
    with pytest.raises(BadRequest, match="on_failure: expected one of rollback, ignore"):
        parse_confirm({"probes": ["iface:lo"], "probe_settings": {"on_failure": "panic"}}, d)
    assert not parse_confirm({}, d).supervised
    assert Policy.PROBES.probes_commit and not Policy.PROBES.manual_confirm
    assert Policy.PROBES_OR_MANUAL.manual_confirm and Policy.MANUAL.manual_confirm
