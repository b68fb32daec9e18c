# SPDX-License-Identifier: GPL-3.0-or-later
"""The .deb (install, reinstall, upgrade, purge in a booted Debian 12) and the .rpm payload."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.system.conftest import script
from tests.system.nspawn import Machine, run

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

UNITS = ("netcfg-txnd.service", "netcfg-txnd.socket", "netcfg-txn-boot-rollback.service")
STATIC = ("netcfg-txn-backstop.service",)  # shipped, started only by OnFailure=
DEPENDS = (
    "python3-pyroute2",
    "python3-psutil",
    "python3-click",
    "python3-systemd",
    "python3-aiohttp",
    "python3-yaml",
)


def deb_field(deb: Path, field: str) -> str:
    return run("dpkg-deb", "-f", str(deb), field).stdout.strip()


@pytest.fixture(scope="module")
def deb_v2(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tree built as a higher version (scripts/build-deb --version)."""
    version = deb_field(deb, "Version") + "+nct1"
    out = tmp_path_factory.mktemp("deb-v2")
    return Path(script("build-deb", "--version", version, "--outdir", str(out)))


@pytest.fixture(scope="module")
def rpm(host_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(script("build-rpm", "--outdir", str(tmp_path_factory.mktemp("rpm"))))


def test_deb_metadata_and_contents(deb: Path, tmp_path: Path) -> None:
    depends = deb_field(deb, "Depends")
    for dep in DEPENDS:
        assert re.search(rf"(^|, ){re.escape(dep)}\b", depends), dep
    assert deb_field(deb, "Architecture") == "all"
    files = set(run("dpkg-deb", "-c", str(deb)).stdout.split())
    for path in (
        "./etc/netcfg-txn/netcfg-txn.toml",
        "./etc/netcfg-txn/conf.d/",
        "./usr/bin/netcfg-txn",
        "./usr/bin/netcfg-txnd",
        "./usr/lib/systemd/catalog/netcfg-txn.catalog",
        "./usr/share/bash-completion/completions/netcfg-txn",
        "./usr/share/man/man8/netcfg-txn.8.gz",
        "./usr/share/man/man8/netcfg-txnd.8.gz",
        "./usr/share/man/man5/netcfg-txn.toml.5.gz",
        "./usr/share/doc/netcfg-txn/SECURITY-EXPOSURE.md",
        *(f"./lib/systemd/system/{u}" for u in (*UNITS, *STATIC)),
    ):
        assert path in files, path
    run("dpkg-deb", "-e", str(deb), str(tmp_path / "DEBIAN"))
    conffiles = (tmp_path / "DEBIAN/conffiles").read_text().split()
    assert conffiles == ["/etc/netcfg-txn/netcfg-txn.toml"]
    postinst = (tmp_path / "DEBIAN/postinst").read_text()
    for unit in UNITS:  # every unit enabled (R27 needs the boot unit enabled on install)
        assert (
            re.search(rf"deb-systemd-helper (--quiet )?enable '?{re.escape(unit)}", postinst)
            or f"'{unit}'" in postinst
        ), unit
    # ...but the boot unit is never started or restarted by the package.
    invoked = [ln for ln in postinst.splitlines() if "deb-systemd-invoke" in ln]
    assert invoked and not any("boot-rollback" in ln for ln in invoked), invoked


def _enabled(m: Machine, unit: str) -> str:
    return m.exec("systemctl", "is-enabled", unit, check=False).stdout.strip()


def _active(m: Machine, unit: str) -> str:
    return m.exec("systemctl", "is-active", unit, check=False).stdout.strip()


def test_deb_install_reinstall_upgrade_purge(
    bare_machine: Machine, deb: Path, deb_v2: Path
) -> None:
    m = bare_machine
    for d in (deb, deb_v2):
        m.write(f"/root/{d.name}", "")
        shutil.copy(d, m.upper / "root" / d.name)
    m.boot()
    v1, v2 = f"/root/{deb.name}", f"/root/{deb_v2.name}"

    # Install: units enabled, daemon started (socket + service), boot unit not started.
    m.exec("dpkg", "-i", v1, timeout=120)
    for unit in UNITS:
        assert _enabled(m, unit) == "enabled", unit
    assert _active(m, "netcfg-txnd.socket") == "active"
    assert _active(m, "netcfg-txnd.service") == "active"
    assert _active(m, "netcfg-txn-boot-rollback.service") == "inactive"
    assert m.cli_ok("status")["state"] == "idle"
    assert m.exec("stat", "-c", "%a", "/var/lib/netcfg-txn").stdout.strip() == "700"
    assert "netcfg-txn" in m.exec("journalctl", "--list-catalog").stdout  # trigger ran
    completion = m.exec(
        "bash",
        "-c",
        "source /usr/share/bash-completion/completions/netcfg-txn\n"
        "COMP_WORDS=(netcfg-txn st); COMP_CWORD=1; _netcfg_txn_completion netcfg-txn\n"
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ).stdout.split()
    assert completion == ["start", "status"]  # click 8.1 (Debian 12) answers our script

    # Reinstall the same version.
    m.exec("dpkg", "-i", v1, timeout=120)
    assert _active(m, "netcfg-txnd.service") == "active"

    # Upgrade, with a local edit of the conffile and a conf.d snippet: both kept, daemon restarted.
    m.exec("sh", "-c", "echo '# local edit' >>/etc/netcfg-txn/netcfg-txn.toml")
    m.write("/etc/netcfg-txn/conf.d/50-local.toml", '[timer]\ndefault = "90s"\n')
    pid = m.show("netcfg-txnd.service", "MainPID")["MainPID"]
    m.exec("dpkg", "-i", v2, timeout=120)
    assert m.exec("dpkg-query", "-W", "-f=${Version}", "netcfg-txn").stdout == deb_field(
        deb_v2, "Version"
    )
    assert m.read("/etc/netcfg-txn/netcfg-txn.toml").endswith("# local edit\n")
    assert m.exists("/etc/netcfg-txn/conf.d/50-local.toml")
    assert _active(m, "netcfg-txnd.service") == "active"
    assert m.show("netcfg-txnd.service", "MainPID")["MainPID"] != pid
    for unit in UNITS:
        assert _enabled(m, unit) == "enabled", unit

    # Purge (with a transaction open: removal warns that nothing will roll it back): nothing is
    # left behind, units gone and stopped.
    m.cli_ok("start", "--timeout", "10m")
    purged = m.exec("dpkg", "--purge", "netcfg-txn", timeout=120)
    assert "WARNING: a transaction is open" in purged.stderr
    for path in (
        "/etc/netcfg-txn",
        "/var/lib/netcfg-txn",
        "/run/netcfg-txn",
        "/usr/bin/netcfg-txn",
        "/lib/systemd/system/netcfg-txnd.service",
    ):
        assert not m.exists(path), path
    left = m.sh("find /etc/systemd -name '*netcfg-txn*'")
    assert left.strip() == "", left
    for unit in UNITS:
        assert _active(m, unit) in ("inactive", "unknown"), unit
    assert m.exec("dpkg-query", "-W", "netcfg-txn", check=False).returncode != 0


def test_rpm_payload_installs_into_an_empty_root(rpm: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    run("rpm", "--root", str(root), "--initdb")
    p = subprocess.run(
        ["rpm", "--root", str(root), "-i", "--nodeps", str(rpm)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    files = run("rpm", "--root", str(root), "-ql", "netcfg-txn").stdout.split()
    for path in (
        "/usr/bin/netcfg-txn",
        "/usr/bin/netcfg-txnd",
        *(f"/usr/lib/systemd/system/{u}" for u in (*UNITS, *STATIC)),
        "/usr/lib/systemd/system-preset/80-netcfg-txn.preset",
        "/etc/netcfg-txn/netcfg-txn.toml",
        "/etc/netcfg-txn/conf.d",
        "/usr/lib/systemd/catalog/netcfg-txn.catalog",
        "/usr/share/bash-completion/completions/netcfg-txn",
        "/var/lib/netcfg-txn",
    ):
        assert path in files, path
    # Every module of every sub-package is in the payload, not only the top-level ones.
    shipped = {f.split("/site-packages/", 1)[1] for f in files if "/site-packages/netcfg_txn/" in f}
    agent = Path(__file__).resolve().parents[2] / "agent"
    expected = {str(m.relative_to(agent)) for m in (agent / "netcfg_txn").rglob("*.py")}
    assert not expected - shipped, sorted(expected - shipped)
    for unit in (*UNITS, *STATIC):
        assert (root / "usr/lib/systemd/system" / unit).read_text() == (
            Path(__file__).resolve().parents[2] / "units" / unit
        ).read_text()
    assert (root / "var/lib/netcfg-txn").stat().st_mode & 0o777 == 0o700
    preset = (root / "usr/lib/systemd/system-preset/80-netcfg-txn.preset").read_text()
    assert preset.split("\n")[:3] == [
        f"enable {u}"
        for u in ("netcfg-txnd.socket", "netcfg-txnd.service", "netcfg-txn-boot-rollback.service")
    ]
    config = run("rpm", "--root", str(root), "-qc", "netcfg-txn").stdout.split()
    assert config == ["/etc/netcfg-txn/netcfg-txn.toml"]
    script_text = run("rpm", "-qp", "--scripts", str(rpm)).stdout
    assert "preset" in script_text and "boot-rollback" in script_text
    shebang = (root / "usr/bin/netcfg-txnd").read_text().splitlines()[0]
    assert shebang.startswith("#!/usr/bin/python3"), shebang
