# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped man pages render without warnings, and netcfg-txn(8) documents every command and
every option of the CLI. The CLI is read by walking click's command tree, so a command or option
added anywhere (``backstop``, ``config check``, ``--probe``...) fails this test until the man page
names it. Renders with groff (groff-base, installed by scripts/lib/bootstrap.sh)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from netcfg_txn.cli.group import cli

REPO = Path(__file__).resolve().parents[2]
MAN = REPO / "packaging" / "man"
PAGES = sorted(MAN.glob("*.[0-9]"))
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _render(page: Path) -> str:
    """Plain text, no hyphenation, long lines: an option is never split across lines."""
    if shutil.which("groff") is None:
        if CI:
            pytest.fail("groff is missing (groff-base); CI=true forbids skipping")
        pytest.skip("needs groff (groff-base) to render the man pages")
    p = subprocess.run(
        ["groff", "-t", "-man", "-Tascii", "-ww", "-rLL=78n", "-rHY=0", "-P-cbou", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert not p.stderr.strip(), f"{page.name}: groff warnings:\n{p.stderr}"
    return p.stdout


def _walk(
    cmd: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _walk(sub, (*path, name))


def _documented(cmd: click.Command) -> Iterator[str]:
    for p in cmd.params:
        if isinstance(p, click.Option) and not p.hidden:
            yield from (o for o in [*p.opts, *p.secondary_opts] if o.startswith("--"))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_man_page_renders_cleanly(page: Path) -> None:
    text = _render(page)
    assert "NAME" in text and "SEE ALSO" in text


def test_netcfg_txn_8_names_every_command_and_option() -> None:
    text = _render(MAN / "netcfg-txn.8")
    words = re.sub(r"\s+", " ", text)
    missing = []
    for path, cmd in _walk(cli):
        if path and not re.search(rf"(?<![\w-]){re.escape(' '.join(path))}(?![\w-])", words):
            # 'remote start' may be written 'remote ... start' on the group's line: accept the
            # leaf under its group only when written out in full.
            missing.append(" ".join(path))
        for opt in _documented(cmd):
            if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", words):
                missing.append(f"{' '.join(path) or 'netcfg-txn'} {opt}")
    assert not missing, "netcfg-txn(8) does not document: " + ", ".join(missing)


def test_walk_sees_nested_commands_and_their_options() -> None:
    """The walker itself: it must reach the nested groups, or the test above proves nothing."""
    seen = {" ".join(p): set(_documented(c)) for p, c in _walk(cli)}
    assert {"config show", "peer add", "remote start", "boot-rollback"} <= set(seen)
    assert "--txn-token-file" in seen["remote arm"] and "--token-file" in seen["start"]
    assert "--no-arm" not in seen["remote start"]  # hidden: refused, not documented


def test_toml_5_documents_every_key_and_the_open_sections() -> None:
    from netcfg_txn.core.config import SCHEMA

    text = _render(MAN / "netcfg-txn.toml.5")
    for section, keys in SCHEMA.items():
        for key in keys:
            assert re.search(rf"(?<![\w-]){key}(?![\w-])", text), f"[{section}] {key}"
    for key in ("listen", "tls_cert", "peers_dir", "auth_failures_per_minute", "settle_s",
                "fail_fast", "rounds"):  # fmt: skip
        assert key in text, key
    assert "README" not in text  # the .deb does not ship it: the page must say it all


def test_daemon_8_names_the_real_journal_fields() -> None:
    text = _render(MAN / "netcfg-txnd.8")
    assert "TXN_ACTOR" not in text and "TXN_REASON" not in text
    assert re.search(r"\bACTOR\b", text) and re.search(r"\bREASON\b", text)
