# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import hmac
import os
import stat
import time
from pathlib import Path, PurePosixPath

import pytest

from netcfg_txn.core.errors import BadToken, ConfigError, NotFound, NotPermitted
from netcfg_txn.core.model import Actor
from netcfg_txn.remote import peers as peers_mod
from netcfg_txn.remote.peers import (
    Peer,
    PeerDb,
    add_peer,
    hash_token,
    list_peers,
    load_peers,
    peer_from_toml,
    revoke_peer,
    subject_matches,
)

PEERS_DIR = PurePosixPath("/etc/netcfg-txn/peers.d")
NOW = 1_800_000_000.0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path


def _dir(root: Path) -> Path:
    return root / "etc/netcfg-txn/peers.d"


def _write(root: Path, name: str, text: str, mode: int = 0o600) -> Path:
    d = _dir(root)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    p = d / name
    p.write_text(text)
    p.chmod(mode)
    return p


def _peer_text(name: str, token: str, extra: str = "") -> str:
    return f'name = "{name}"\ntoken_sha256 = "{hash_token(token)}"\n{extra}'


# ------------------------------------------------------------------------------ add/list/revoke


def test_add_returns_token_once_and_stores_only_its_hash(root: Path) -> None:
    token = add_peer(PEERS_DIR, "ctl1", None, None, root=root)
    assert len(token) >= 43  # token_urlsafe(32): 256 bits
    f = _dir(root) / "ctl1.toml"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert token not in f.read_text() and hash_token(token) in f.read_text()
    assert not [p for p in _dir(root).iterdir() if p.name.startswith(".")]  # no temp file left
    db = load_peers(PEERS_DIR, root)
    actor = db.authenticate(token, None, "confirm", NOW, address="192.0.2.2")
    assert actor == Actor(kind="remote", peer="ctl1", address="192.0.2.2")


def test_add_existing_needs_rotate_and_rotation_invalidates_old_token(root: Path) -> None:
    old = add_peer(PEERS_DIR, "ctl1", None, None, root=root)
    with pytest.raises(ConfigError, match="exists"):
        add_peer(PEERS_DIR, "ctl1", None, None, root=root)
    new = add_peer(PEERS_DIR, "ctl1", None, ["confirm"], rotate=True, root=root)
    db = load_peers(PEERS_DIR, root)
    assert db.authenticate(new, None, "confirm", NOW).peer == "ctl1"
    with pytest.raises(BadToken):
        db.authenticate(old, None, "confirm", NOW)


def test_add_with_expiry_operations_subject_round_trips(root: Path) -> None:
    add_peer(
        PEERS_DIR,
        "ctl2",
        "2031-01-02T03:04:05+01:00",
        ["status", "confirm"],
        client_subject="CN=orch,O=Example",
        root=root,
    )
    (p,) = list_peers(PEERS_DIR, root=root).peers
    assert p.expires_wall_s == 1925085845.0
    assert p.operations == frozenset({"status", "confirm"})
    assert p.client_subject == "CN=orch,O=Example"
    assert p.to_json()["expires"] == "2031-01-02T02:04:05Z"


def test_revoke_removes_peer_and_unknown_is_not_found(root: Path) -> None:
    token = add_peer(PEERS_DIR, "ctl1", None, None, root=root)
    revoke_peer(PEERS_DIR, "ctl1", root=root)
    with pytest.raises(BadToken, match="unknown or revoked"):
        load_peers(PEERS_DIR, root).authenticate(token, None, "confirm", NOW)
    with pytest.raises(NotFound):
        revoke_peer(PEERS_DIR, "ctl1", root=root)


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "x" * 65, "sp ace"])
def test_bad_names_refused(root: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid peer name"):
        add_peer(PEERS_DIR, name, None, None, root=root)


def test_missing_dir_means_no_peers(root: Path) -> None:
    db = load_peers(PEERS_DIR, root)
    assert db.peers == ()
    with pytest.raises(BadToken):
        db.authenticate("anything", None, "status", NOW)


# --------------------------------------------------------------------------------- authenticate


def _db(**kw: object) -> PeerDb:
    base = {"name": "p1", "token_sha256": hash_token("tok-1")}
    return PeerDb((peer_from_toml({**base, **kw}, "t"), Peer("p2", hash_token("tok-2"))))


@pytest.mark.parametrize("bearer", [None, "", "tok-3", "tok-1 ", "TOK-1", "x" * 5000])
def test_wrong_or_missing_token(bearer: str | None) -> None:
    with pytest.raises(BadToken) as e:
        _db().authenticate(bearer, None, "confirm", NOW)
    if bearer:
        assert bearer not in e.value.message and bearer not in str(e.value.hint)


def test_expired() -> None:
    db = _db(expires="2027-01-15T00:00:00Z")
    exp = db.peers[0].expires_wall_s
    assert exp is not None
    assert db.authenticate("tok-1", None, "confirm", exp - 1).peer == "p1"
    with pytest.raises(BadToken, match="expired") as e:
        db.authenticate("tok-1", None, "confirm", exp)
    assert "tok-1" not in e.value.message


def test_operation_not_allowed() -> None:
    db = _db(operations=["status", "confirm"])
    assert db.authenticate("tok-1", None, "confirm", NOW).peer == "p1"
    with pytest.raises(NotPermitted, match="may not start") as e:
        db.authenticate("tok-1", None, "start", NOW)
    assert not isinstance(e.value, BadToken)
    assert db.authenticate("tok-1", None, "version", NOW).peer == "p1"


def test_client_subject_binding() -> None:
    db = _db(client_subject="orchestrator1")
    ok_dn = "CN=orchestrator1,O=netcfg-txn tests"
    assert db.authenticate("tok-1", ok_dn, "confirm", NOW).peer == "p1"
    with pytest.raises(NotPermitted, match="no client certificate"):
        db.authenticate("tok-1", None, "confirm", NOW)
    with pytest.raises(NotPermitted, match="bound to"):
        db.authenticate("tok-1", "CN=intruder,O=netcfg-txn tests", "confirm", NOW)
    dn_db = _db(client_subject="CN=orchestrator1, O=netcfg-txn tests")
    assert dn_db.authenticate("tok-1", ok_dn, "confirm", NOW).peer == "p1"
    with pytest.raises(NotPermitted):
        dn_db.authenticate("tok-1", "CN=orchestrator1,O=other", "confirm", NOW)


def test_subject_matching() -> None:
    assert subject_matches("a", "CN=a,O=b")
    assert not subject_matches("a", "CN=ab,O=b")
    assert not subject_matches("a", "O=a")
    assert subject_matches("cn=a,o=b", "CN=a,O=b")
    assert not subject_matches("CN=a", "CN=a,O=b")
    assert not subject_matches("a", None)


def test_all_hashes_compared_without_early_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The constant-time path: compare_digest runs once per peer whichever peer matches."""
    db = PeerDb(tuple(Peer(f"p{i}", hash_token(f"tok-{i}")) for i in range(7)))
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def counting(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(peers_mod.hmac, "compare_digest", counting)
    for token, expect in (("tok-0", "p0"), ("tok-6", "p6"), ("nope", None)):
        calls.clear()
        if expect is None:
            with pytest.raises(BadToken):
                db.authenticate(token, None, "status", NOW)
        else:
            assert db.authenticate(token, None, "status", NOW).peer == expect
        assert len(calls) == 7
        assert {b for _, b in calls} in ({hash_token(token)},)  # only hashes compared, never raw


# -------------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('name = "ctl"\ntoken_sha256 = "abc"\n', "token_sha256"),
        ('name = "ctl"\n', "token_sha256"),
        ('token_sha256 = "' + "a" * 64 + '"\n', "name"),
        ('name = "ctl"\ntoken_sha256 = "' + "A" * 64 + '"\n', "token_sha256"),
        ('name = "ctl"\ntoken_sha256 = "' + "a" * 64 + '"\ncolour = 1\n', "colour: unknown key"),
        ('name = "ctl"\ntoken_sha256 = "' + "a" * 64 + '"\nexpires = "soon"\n', "expires"),
        (
            'name = "ctl"\ntoken_sha256 = "' + "a" * 64 + '"\nexpires = 2030-01-01T00:00:00\n',
            "UTC offset",
        ),  # fmt: skip
        (
            'name = "ctl"\ntoken_sha256 = "' + "a" * 64 + '"\noperations = ["reboot"]\n',
            "operations",
        ),  # fmt: skip
        ('name = "ctl"\ntoken_sha256 = "' + "a" * 64 + '"\noperations = []\n', "operations"),
        (
            'name = "ctl"\ntoken_sha256 = "' + "a" * 64 + '"\nclient_subject = ""\n',
            "client_subject",
        ),
        ('name = "other"\ntoken_sha256 = "' + "a" * 64 + '"\n', "does not match the file name"),
        ("name = [\n", "invalid TOML"),
        ("\xff", "invalid TOML"),
    ],
)
def test_bad_file_names_file_and_key(root: Path, text: str, match: str) -> None:
    path = _write(root, "ctl.toml", text)
    with pytest.raises(ConfigError, match=match) as e:
        load_peers(PEERS_DIR, root)
    assert str(path) in e.value.message


def test_toml_datetime_expiry_accepted(root: Path) -> None:
    _write(root, "ctl.toml", _peer_text("ctl", "t", "expires = 2030-01-01T00:00:00Z\n"))
    assert load_peers(PEERS_DIR, root).peers[0].expires_wall_s == 1893456000.0


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o700, 0o666])
def test_too_open_modes_rejected(root: Path, mode: int) -> None:
    _write(root, "ctl.toml", _peer_text("ctl", "t"), mode=mode)
    with pytest.raises(ConfigError, match="too open"):
        load_peers(PEERS_DIR, root)


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400, 0o440])
def test_private_modes_accepted(root: Path, mode: int) -> None:
    _write(root, "ctl.toml", _peer_text("ctl", "t"), mode=mode)
    assert load_peers(PEERS_DIR, root).names() == ("ctl",)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown a file to another user")
def test_not_root_owned_rejected(root: Path) -> None:
    p = _write(root, "ctl.toml", _peer_text("ctl", "t"))
    os.chown(p, 65534, 0)
    with pytest.raises(ConfigError, match="owned by uid 65534"):
        load_peers(PEERS_DIR, root)


def test_symlink_not_followed(root: Path) -> None:
    target = root / "elsewhere.toml"
    target.write_text(_peer_text("ctl", "t"))
    target.chmod(0o600)
    _dir(root).mkdir(parents=True)
    (_dir(root) / "ctl.toml").symlink_to(target)
    with pytest.raises(ConfigError, match="symlink"):
        load_peers(PEERS_DIR, root)


def test_symlinked_or_open_dir_rejected(root: Path) -> None:
    real = root / "real"
    real.mkdir(mode=0o700)
    (root / "etc/netcfg-txn").mkdir(parents=True)
    _dir(root).symlink_to(real)
    with pytest.raises(ConfigError, match="not a directory"):
        load_peers(PEERS_DIR, root)
    _dir(root).unlink()
    _dir(root).mkdir()
    _dir(root).chmod(0o777)
    with pytest.raises(ConfigError, match="world-writable"):
        load_peers(PEERS_DIR, root)


def test_non_strict_load_skips_bad_files_but_keeps_good(root: Path) -> None:
    _write(root, "good.toml", _peer_text("good", "t-good"))
    _write(root, "bad.toml", _peer_text("bad", "t-bad"), mode=0o644)
    _write(root, "dup.toml", _peer_text("dup", "t-good"))
    _write(root, "README", "not a peer")
    _write(root, ".good.toml.1234.tmp", "partial")
    db = list_peers(PEERS_DIR, root=root)
    assert db.names() == ()  # good and dup share a token: neither is trusted
    assert len(db.problems) == 2
    assert any("bad.toml" in p and "too open" in p for p in db.problems)
    assert any("dup, good have the same token_sha256" in p for p in db.problems)
    with pytest.raises(ConfigError):
        load_peers(PEERS_DIR, root)


def test_reload_is_cheap(root: Path) -> None:
    for i in range(50):
        add_peer(PEERS_DIR, f"p{i}", None, None, root=root)
    t0 = time.perf_counter()
    for _ in range(20):
        db = load_peers(PEERS_DIR, root)
    per_load = (time.perf_counter() - t0) / 20
    assert len(db.peers) == 50
    assert per_load < 0.05, per_load


def test_peer_cache_follows_the_directory(root: Path) -> None:
    from netcfg_txn.remote.peers import PeerCache

    t = [0.0]
    old = add_peer(PEERS_DIR, "ctl1", None, None, root=root)
    cache = PeerCache(PEERS_DIR, root, min_interval_s=1.0, monotonic=lambda: t[0])
    assert cache.get().names() == ("ctl1",)
    new = add_peer(PEERS_DIR, "ctl2", None, None, root=root)
    revoke_peer(PEERS_DIR, "ctl1", root=root)
    assert cache.get().names() == ("ctl1",)  # not re-checked within the interval
    t[0] = 1.0
    assert cache.get().names() == ("ctl2",)  # revocation took effect
    with pytest.raises(BadToken):
        cache.get().authenticate(old, None, "confirm", NOW)
    _write(root, "bad.toml", _peer_text("bad", "x"), mode=0o666)
    t[0] = 2.0
    db = cache.get()
    assert db.names() == ("ctl2",) and db.authenticate(new, None, "status", NOW).peer == "ctl2"
    assert any("bad.toml" in p for p in db.problems)
    rotated = add_peer(PEERS_DIR, "ctl2", None, None, rotate=True, root=root)
    assert cache.reload().authenticate(rotated, None, "status", NOW).peer == "ctl2"  # SIGHUP


def test_peer_cache_first_load_skips_bad_files(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad peer file must not keep the daemon (and its dead-man timer) from starting."""
    from netcfg_txn.host import sd
    from netcfg_txn.remote.peers import PeerCache

    token = add_peer(PEERS_DIR, "good", None, None, root=root)
    _write(root, "bad.toml", "name = [")
    _write(root, "open.toml", _peer_text("open", "x"), mode=0o644)
    with caplog.at_level("ERROR"):
        db = PeerCache(PEERS_DIR, root).get()
    assert db.names() == ("good",)
    assert db.authenticate(token, None, "status", NOW).peer == "good"
    assert {p.split(":")[0].rsplit("/", 1)[-1] for p in db.problems} == {"bad.toml", "open.toml"}
    ids = [getattr(r, "journal_fields", {}).get("MESSAGE_ID") for r in caplog.records]
    assert ids.count(sd.MSG_OPTIONAL_FAILED) == 2
