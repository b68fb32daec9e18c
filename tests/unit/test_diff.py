# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure planning: the restore plan, change classification, diffs; and the one file set (R7)."""

from __future__ import annotations

from pathlib import PurePosixPath as P

from hypothesis import given
from hypothesis import strategies as st

from netcfg_txn.core import diff
from netcfg_txn.core.fileset import FileSet, from_presets
from netcfg_txn.core.model import FileState, Manifest


def fs(path: str, digest: str = "a" * 64, mode: int = 0o644, uid: int = 0) -> FileState:
    return FileState(P(path), "file", digest, 1, mode, uid, 0, 1)


def test_plan_restore_four_cases() -> None:
    saved = Manifest((fs("/etc/a"), fs("/etc/b"), fs("/etc/c"), fs("/etc/m", mode=0o600)))
    now = Manifest((fs("/etc/a"), fs("/etc/b", "b" * 64), fs("/etc/new"), fs("/etc/m")))
    p = diff.plan_restore(saved, now)
    assert [f.path for f in p.write] == [P("/etc/b"), P("/etc/c"), P("/etc/m")]
    assert p.delete == (P("/etc/new"),)
    assert p.untouched == (P("/etc/a"),)


def test_changes_classify_metadata_separately() -> None:
    old = Manifest((fs("/x", mode=0o644), fs("/y"), fs("/z")))
    new = Manifest((fs("/x", mode=0o600), fs("/y", "c" * 64), fs("/w")))
    kinds = {str(c.path): c.kind for c in diff.changes(old, new)}
    assert kinds == {"/x": "metadata", "/y": "modified", "/z": "removed", "/w": "added"}


def test_unified_diff_handles_added_and_removed() -> None:
    assert "+++ /dev/null" in diff.unified(P("/etc/a"), b"x\n", None)
    assert "--- /dev/null" in diff.unified(P("/etc/a"), None, b"x\n")
    assert diff.unified(P("/etc/a"), b"same\n", b"same\n") == ""


names = st.sampled_from(["/etc/a", "/etc/b", "/etc/c", "/etc/d/e", "/etc/d/a"])
states = st.builds(
    fs, names, st.sampled_from(["a" * 64, "b" * 64]), st.sampled_from([0o644, 0o600])
)


@given(st.lists(states, unique_by=lambda f: f.path), st.lists(states, unique_by=lambda f: f.path))
def test_restore_plan_converges(saved_l: list[FileState], now_l: list[FileState]) -> None:
    """Applying the plan to `now` yields exactly `saved`, and never writes an identical file."""
    saved, now = Manifest(tuple(saved_l)), Manifest(tuple(now_l))
    p = diff.plan_restore(saved, now)
    result = {f.path: f for f in now.files if f.path not in p.delete}
    result.update({f.path: f for f in p.write})
    assert result == saved.by_path()
    cur = now.by_path()
    assert not any(f.path in cur and cur[f.path].same_content(f) for f in p.write)


def test_fileset_globs_never_match_dotfiles_or_cross_directories() -> None:
    s = FileSet(("/etc/network/interfaces.d/*",), ("/etc/network/interfaces.d/skip*",))
    assert s.matches(P("/etc/network/interfaces.d/eth0"))
    assert not s.matches(P("/etc/network/interfaces.d/.eth0.swp"))
    assert not s.matches(P("/etc/network/interfaces.d/sub/eth0"))
    assert not s.matches(P("/etc/network/interfaces.d/skipme"))


def test_presets_merge_without_duplicates() -> None:
    s = from_presets(["ifupdown", "ifupdown2"], ["/etc/extra"], [])
    assert s.include == ("/etc/network/interfaces", "/etc/network/interfaces.d/*", "/etc/extra")
    assert P("/etc/network/interfaces.d") in s.watch_dirs()


def test_changes_are_in_path_order_not_string_order() -> None:
    # "/etc/a/z" sorts before "/etc/a-b" as paths (part "a" < "a-b"), after it as strings.
    paths = ["/etc/a-b", "/etc/a/z", "/etc/a.b/c", "/etc/A", "/etc/a"]
    new = Manifest(tuple(fs(p) for p in paths))
    got = [c.path for c in diff.changes(Manifest(()), new)]
    assert got == sorted(P(p) for p in paths)
    assert got[:2] == [P("/etc/A"), P("/etc/a")] and got.index(P("/etc/a/z")) < got.index(
        P("/etc/a-b")
    )
