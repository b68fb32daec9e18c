#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Guest side of scripts/powercut-test: runs inside the qemu VM, drives the installed netcfg-txn
(the .deb) and reports on the serial console. Stdlib only (the VM has Debian's python3).

The host passes the plan for this boot on the kernel command line:

    nct.check=SCEN   check what the previous boot's power cut of scenario SCEN left behind
    nct.run=SCEN     set up scenario SCEN and reach its cut point (then wait to be killed)
    nct.early=SCEN   (early unit) cut while netcfg-txn-boot-rollback restores files
    nct.final=1      after the check: print DONE and power off

Console protocol (one line each, prefix ``NCT:``):

    NCT: CUT SCEN key=value...        the cut point is reached: the host kills qemu now
    NCT: MISSED SCEN why...           the cut point was never reached (a test failure)
    NCT: CHECK SCEN PASS|FAIL key=value... detail
    NCT: ERROR text                   the driver itself failed
    NCT: DONE

Cut points that fall inside an operation ("after the 3rd blob was written") are found with
inotify on the directory the operation writes; the moment the event arrives, the unit doing the
work is frozen (cgroup v2 ``cgroup.freeze``) so the cut lands at that point of the program, not a
few files later, and the driver prints CUT. The kernel keeps running until the host's SIGKILL,
so writeback of dirty pages goes on exactly as it would until a real power loss.

``SCENARIOS`` is also imported by the host script (it reads names and descriptions).
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import http.client
import json
import os
import select
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable

MANAGED = "/etc/network/interfaces.d"
PREFIX = "nct-"
STATE = "/var/lib/netcfg-txn"
CLI = "/usr/bin/netcfg-txn"
CONTROL = "/run/netcfg-txn/control"
CONSOLE = "/dev/ttyS0"
CGROUP = "/sys/fs/cgroup/system.slice"
DAEMON_UNIT = "netcfg-txnd.service"
BOOT_UNIT = "netcfg-txn-boot-rollback.service"

N_FILES = 24  # regular files in set A (plus one symlink)
FILE_SIZE = 48 * 1024  # big enough that the freeze lands within a file or two of the target


@dataclasses.dataclass(frozen=True)
class Scenario:
    what: str  # where the power is cut
    kind: str
    expect: str
    watch: tuple[str, str, str, int] | None = None
    edit: str | None = None  # after-* kinds: "sync" / "nosync" new set written, None: no edit


# name -> where the power is cut, how, and the outcome expected after the reboot
#   kind: "start" (cut inside start), "rollback" / "timeout" (inside a rollback's restore),
#         "commit" (inside commit), "after-*" (right after the command returned),
#         "boot" (inside the boot-time rollback of the next boot; two power cuts in a row)
#   params: (directory, inotify event, name filter, n) for cuts inside an operation
#   expect: "A" the snapshot, "B" the committed set, "A|B" either, consistent with history
SCENARIOS: dict[str, Scenario] = {
    "start-blob-1": Scenario(
        what="during start's snapshot, after the 1st blob temp file was written",
        kind="start",
        watch=("blobs", "close_write", "tmp", 1),
        expect="A",
    ),
    "start-blob-half": Scenario(
        what=f"during start's snapshot, after blob temp file {N_FILES // 2} of {N_FILES}",
        kind="start",
        watch=("blobs", "close_write", "tmp", N_FILES // 2),
        expect="A",
    ),
    "start-blob-last": Scenario(
        what=f"during start's snapshot, after the last blob temp ({N_FILES}), before syncfs",
        kind="start",
        watch=("blobs", "close_write", "tmp", N_FILES),
        expect="A",
    ),
    "start-blob-rename": Scenario(
        what="during start's snapshot, after the syncfs barrier, at the 1st blob rename",
        kind="start",
        watch=("blobs", "moved_to", "plain", 1),
        expect="A",
    ),
    "start-publish": Scenario(
        what="during start, right after the snapshot directory was renamed into place",
        kind="start",
        watch=("snapshots", "moved_to", "plain", 1),
        expect="A",
    ),
    "start-record": Scenario(
        what="during start, right after txn.json (the commit point of start) was renamed",
        kind="start",
        watch=("state", "moved_to", "txn.json", 1),
        expect="A",
    ),
    "after-start": Scenario(
        what="right after start returned, files not edited yet",
        kind="after-start",
        edit=None,
        expect="A",
    ),
    "after-start-edited": Scenario(
        what="after start returned and the new set was written and synced",
        kind="after-start",
        edit="sync",
        expect="A",
    ),
    "after-start-unsynced": Scenario(
        what="after start returned and the new set was written (not synced)",
        kind="after-start",
        edit="nosync",
        expect="A",
    ),
    "rollback-temp-1": Scenario(
        what="during a rollback's restore, after the 1st restore temp file was written",
        kind="rollback",
        watch=("managed", "close_write", "tmp", 1),
        expect="A",
    ),
    "rollback-temp-last": Scenario(
        what="during a rollback's restore, after the last temp file, before its syncfs",
        kind="rollback",
        watch=("managed", "close_write", "tmp", -1),
        expect="A",
    ),
    "rollback-rename-half": Scenario(
        what="during a rollback's restore, after half of the files were renamed into place",
        kind="rollback",
        watch=("managed", "moved_to", "managed", -2),
        expect="A",
    ),
    "timeout-rename-1": Scenario(
        what="during a deadline rollback's restore, at the 1st file renamed into place",
        kind="timeout",
        watch=("managed", "moved_to", "managed", 1),
        expect="A",
    ),
    "after-rollback": Scenario(
        what="right after rollback returned",
        kind="after-rollback",
        expect="A",
    ),
    "commit-record": Scenario(
        what="during commit, right after txn.json flipped to committed (before fsync of dir)",
        kind="commit",
        watch=("state", "moved_to", "txn.json", 1),
        expect="A|B",
    ),
    "after-commit": Scenario(
        what="right after commit returned (new set written and synced before commit)",
        kind="after-commit",
        edit="sync",
        expect="B",
    ),
    "after-commit-unsynced": Scenario(
        what="right after commit returned (new set written, never synced by the editor)",
        kind="after-commit",
        edit="nosync",
        expect="B",
    ),
    "boot-rollback-rename-1": Scenario(
        what="a transaction left open; next boot: cut again while boot-rollback renames "
        "its 1st file",
        kind="boot",
        watch=("managed", "moved_to", "managed", 1),
        expect="A",
    ),
}

# The subset CI runs through tests/powercut/test_powercut.py: one cut inside each operation.
QUICK = ("start-blob-half", "rollback-rename-half", "after-commit-unsynced")


# ------------------------------------------------------------------------------- reporting


def say(*parts: object) -> None:
    line = "NCT: " + " ".join(str(p) for p in parts) + "\n"
    try:
        fd = os.open(CONSOLE, os.O_WRONLY | os.O_NOCTTY)
        try:
            os.write(fd, b"\r\n" + line.encode())
        finally:
            os.close(fd)
    except OSError:
        pass
    sys.stdout.write(line)
    sys.stdout.flush()


def cmdline() -> dict[str, str]:
    with open("/proc/cmdline") as f:
        words = f.read().split()
    return dict(w.split("=", 1) for w in words if w.startswith("nct.") and "=" in w)


# ------------------------------------------------------------------------------- file sets


def _content(seed: str, size: int = FILE_SIZE) -> bytes:
    head = f"# {seed}\n".encode()
    return head + hashlib.shake_256(seed.encode()).digest(size - len(head))


def file_set(scen: str, which: str) -> dict[str, tuple[str, bytes, int]]:
    """The files of set A (snapshot) or B (the change) of a scenario: name -> (kind, data, mode).
    B rewrites most files, changes only the mode of some, deletes two, adds two and retargets the
    symlink, so a restore exercises rewrite, metadata-only, recreate, delete and symlink."""
    a = {f"{PREFIX}{i:03d}": ("file", _content(f"{scen}/A/{i}"), 0o644) for i in range(N_FILES)}
    a[f"{PREFIX}link"] = ("symlink", f"{PREFIX}000".encode(), 0o777)
    if which == "A":
        return a
    b: dict[str, tuple[str, bytes, int]] = {}
    for i in range(N_FILES - 2):  # the last two are deleted
        name = f"{PREFIX}{i:03d}"
        if i % 7 == 3:
            b[name] = ("file", a[name][1], 0o640)  # mode change only
        else:
            b[name] = ("file", _content(f"{scen}/B/{i}", FILE_SIZE // 2), 0o644)
    b[f"{PREFIX}new0"] = ("file", _content(f"{scen}/B/new0", 4096), 0o644)
    b[f"{PREFIX}new1"] = ("file", _content(f"{scen}/B/new1", 4096), 0o600)
    b[f"{PREFIX}link"] = ("symlink", f"{PREFIX}001".encode(), 0o777)
    return b


def summarize(fs: dict[str, tuple[str, bytes, int]]) -> dict[str, tuple[str, str, int]]:
    out = {}
    for name, (kind, data, mode) in fs.items():
        if kind == "symlink":
            out[name] = ("symlink", data.decode(), 0)
        else:
            out[name] = (kind, hashlib.sha256(data).hexdigest(), mode)
    return out


def current() -> tuple[dict[str, tuple[str, str, int]], list[str]]:
    """The managed files now (as summarize() shapes them) and stray hidden temp files."""
    out: dict[str, tuple[str, str, int]] = {}
    stray = []
    for name in sorted(os.listdir(MANAGED)):
        path = os.path.join(MANAGED, name)
        if name.startswith("."):
            stray.append(name)
            continue
        if not name.startswith(PREFIX):
            continue
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            out[name] = ("symlink", os.readlink(path), 0)
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                data = f.read()
            out[name] = ("file", hashlib.sha256(data).hexdigest(), stat.S_IMODE(st.st_mode))
            if not data:
                out[name] = ("file", "EMPTY", stat.S_IMODE(st.st_mode))
        else:
            out[name] = ("other", "", 0)
    return out, stray


def write_set(fs: dict[str, tuple[str, bytes, int]], *, clean: bool, sync: bool) -> None:
    """Write a file set the way an admin's tool would (open/write/close in place; no fsync)."""
    if clean:
        for name in os.listdir(MANAGED):
            if name.startswith(PREFIX) or name.startswith("."):
                os.unlink(os.path.join(MANAGED, name))
    have = set(n for n in os.listdir(MANAGED) if n.startswith(PREFIX))
    for name in have - set(fs):
        os.unlink(os.path.join(MANAGED, name))
    for name, (kind, data, mode) in sorted(fs.items()):
        path = os.path.join(MANAGED, name)
        if kind == "symlink":
            if os.path.lexists(path):
                os.unlink(path)
            os.symlink(data.decode(), path)
            continue
        if os.path.islink(path):
            os.unlink(path)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
    if sync:
        os.sync()


# ------------------------------------------------------------------------------- inotify

IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
_EVENTS = {"close_write": IN_CLOSE_WRITE, "moved_to": IN_MOVED_TO}
_libc = ctypes.CDLL(None, use_errno=True)


class Watch:
    """Counts inotify events of one kind in one directory whose name passes a filter."""

    def __init__(self, directory: str, event: str, filt: str) -> None:
        self.fd = _libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.mask = _EVENTS[event]
        if _libc.inotify_add_watch(self.fd, directory.encode(), self.mask) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
        self.filt = filt
        self.count = 0
        self.names: list[str] = []

    def _match(self, name: str) -> bool:
        if self.filt == "tmp":  # a temp file: blobs' ".<sha>.XXXX.tmp", restores' ".<name>.nct-*"
            return name.startswith(".")
        if self.filt == "plain":
            return not name.startswith(".")
        if self.filt == "managed":
            return name.startswith(PREFIX)
        return name == self.filt

    def wait(self, n: int, timeout_s: float, alive: Callable[[], bool]) -> bool:
        """Block until the n-th matching event; False if ``alive()`` turns false first."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if not r:
                if not alive():
                    return self._drain(n)
                continue
            if self._drain(n):
                return True
        return False

    def _drain(self, n: int) -> bool:
        try:
            buf = os.read(self.fd, 65536)
        except BlockingIOError:
            return self.count >= n
        off = 0
        while off < len(buf):
            _wd, mask, _cookie, size = struct.unpack_from("iIII", buf, off)
            name = buf[off + 16 : off + 16 + size].rstrip(b"\0").decode(errors="replace")
            off += 16 + size
            if mask & self.mask and self._match(name):
                self.count += 1
                self.names.append(name)
                if self.count >= n:
                    return True
        return self.count >= n


def freeze(unit: str) -> str:
    """Freeze every process of a unit (cgroup v2); returns 'frozen' or why not."""
    path = os.path.join(CGROUP, unit)
    try:
        with open(os.path.join(path, "cgroup.freeze"), "w") as f:
            f.write("1")
        for _ in range(200):
            with open(os.path.join(path, "cgroup.events")) as f:
                if "frozen 1" in f.read():
                    return "frozen"
            time.sleep(0.005)
        return "freezing"
    except OSError as e:
        return f"not-frozen({e.strerror})"


# ------------------------------------------------------------------------------ the product


class _UnixHTTP(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(CONTROL)


def api(method: str, path: str) -> dict[str, object]:
    """The daemon's API straight over the control socket: checks need no CLI start-up (seconds
    under TCG); the scenario's own actions always go through the CLI."""
    conn = _UnixHTTP("localhost", timeout=120)
    try:
        conn.request(method, path)
        doc = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    if not isinstance(doc, dict) or not doc.get("ok"):
        raise RuntimeError(f"{method} {path}: {doc}")
    out: dict[str, object] = doc
    return out


def cli(*args: str, check: bool = True, timeout: float = 300) -> dict[str, object]:
    p = subprocess.run([CLI, "--json", *args], capture_output=True, text=True, timeout=timeout)
    doc: dict[str, object]
    try:
        doc = dict(json.loads(p.stdout))
    except (ValueError, TypeError):
        doc = {"ok": False, "error": {"message": f"no JSON: {p.stdout!r} {p.stderr!r}"}}
    if check and not doc.get("ok"):
        raise RuntimeError(f"netcfg-txn {' '.join(args)} failed ({p.returncode}): {doc}")
    return doc


def unit_show(unit: str, *props: str) -> dict[str, str]:
    p = subprocess.run(
        ["systemctl", "show", unit, *(f"-p{x}" for x in props)], capture_output=True, text=True
    )
    return dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)


def journal(unit: str, lines: int = 6) -> str:
    p = subprocess.run(
        ["journalctl", "-b", "-u", unit, "-o", "cat", "--no-pager", "-n", str(lines)],
        capture_output=True,
        text=True,
    )
    return " | ".join(x.strip() for x in p.stdout.splitlines() if x.strip())


# -------------------------------------------------------------------------------- check


def classify(now: dict[str, tuple[str, str, int]], scen: str) -> tuple[str, str]:
    a = summarize(file_set(scen, "A"))
    b = summarize(file_set(scen, "B"))
    if now == a:
        return "A", ""
    if now == b:
        return "B", ""
    bad = []
    for name in sorted(set(a) | set(b) | set(now)):
        got = now.get(name)
        if got == a.get(name) or got == b.get(name):
            which = "A" if got == a.get(name) else "B"
            bad.append(f"{name}={which}")
        else:
            bad.append(
                f"{name}={'missing' if got is None else 'EMPTY' if got[1] == 'EMPTY' else 'other'}"
            )
    return "mix", ",".join(bad)


def check(scen: str) -> None:
    expect = SCENARIOS[scen].expect
    boot = unit_show(BOOT_UNIT, "Result", "ExecMainStatus", "ActiveState")
    boot_log = journal(BOOT_UNIT)
    problems = []
    if boot.get("Result") != "success":
        problems.append(f"boot-rollback unit {boot}")
    try:
        status = api("GET", "/v1/status")
    except Exception as e:
        status = {"state": f"unavailable: {e}"}
    if status.get("state") != "idle":
        problems.append(f"state is {status.get('state')!r}, want idle")
    hist: list[dict[str, object]] = []
    try:
        got = api("GET", "/v1/history?limit=10").get("history")
        hist = [h for h in got if isinstance(h, dict)] if isinstance(got, list) else []
    except Exception as e:
        problems.append(f"history: {e}")
    mine = [h for h in hist if isinstance(h, dict) and h.get("label") == scen]
    outcomes = [f"{h.get('phase')}({h.get('reason') or '-'})" for h in mine]
    committed = any(h.get("phase") == "committed" for h in mine)
    now, stray = current()
    found, detail = classify(now, scen)
    if found == "mix":
        problems.append(f"files are a mix of neither set: {detail}")
    elif found not in expect.split("|"):
        problems.append(f"files are set {found}, want {expect}")
    if found == "B" and not committed:
        problems.append("files are the new set but the transaction was not committed")
    if found == "A" and committed:
        problems.append("a committed transaction was rolled back")
    if any(h.get("phase") == "failed" for h in mine):
        problems.append("a rollback recorded failures")
    if stray:  # temp files of an interrupted restore must be swept by recovery
        problems.append(f"{len(stray)} stale temp file(s) in {MANAGED}: {','.join(stray[:5])}")
    verdict = "FAIL" if problems else "PASS"
    say(
        "CHECK",
        scen,
        verdict,
        f"files={found}",
        f"history={','.join(outcomes) or 'none'}",
        f"boot_rollback={boot.get('Result')}/{boot.get('ExecMainStatus')}",
        f"stray_temps={len(stray)}",
        "|",
        "; ".join(problems) or "ok",
        "|",
        f"boot-rollback log: {boot_log or '-'}",
    )


# ---------------------------------------------------------------------------------- run


def _watch_dir(where: str) -> str:
    return {
        "blobs": f"{STATE}/blobs",
        "snapshots": f"{STATE}/snapshots",
        "state": STATE,
        "managed": MANAGED,
    }[where]


def _resolve_n(n: int, scen: str) -> int:
    """Negative n: -1 = every file the restore writes, -2 = half of them."""
    if n > 0:
        return n
    a, b = file_set(scen, "A"), file_set(scen, "B")
    writes = sum(1 for k, v in a.items() if v[0] == "file" and b.get(k) != v)
    renames = sum(1 for k, v in a.items() if b.get(k) != v)  # files + the symlink
    return writes if n == -1 else max(1, renames // 2)


def cut_during(scen: str, unit: str, argv: list[str] | None, timeout_s: float = 240) -> None:
    """Start ``argv`` (if any) in the background and cut at the scenario's inotify event."""
    watch = SCENARIOS[scen].watch
    assert watch is not None, scen
    where, event, filt, n = watch
    n = _resolve_n(n, scen)
    w = Watch(_watch_dir(where), event, filt)
    proc = (
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if argv
        else None
    )
    t0 = time.monotonic()
    hit = w.wait(n, timeout_s, lambda: proc is None or proc.poll() is None)
    if not hit:
        say(
            "MISSED",
            scen,
            f"saw {w.count} of {n} {event} events ({w.names[-3:]})",
            f"rc={proc.poll() if proc else '-'}",
        )
        return
    state = freeze(unit)
    say(
        "CUT",
        scen,
        f"event={event}#{n}",
        f"name={w.names[-1]}",
        unit,
        state,
        f"t={time.monotonic() - t0:.2f}s",
    )


def setup(scen: str) -> dict[str, object]:
    """Set A on disk (durable), no transaction open; then start one labelled with the scenario."""
    st = api("GET", "/v1/status")
    if st.get("state") != "idle":
        say(
            "NOTE",
            scen,
            f"a transaction was open before setup ({st.get('state')}): forcing rollback",
        )
        cli("rollback", "--force", check=False)
    write_set(file_set(scen, "A"), clean=True, sync=True)
    return {}


START = ["start", "--allow-pending", "--timeout", "30m"]


def run(scen: str) -> None:
    spec = SCENARIOS[scen]
    kind = spec.kind
    setup(scen)
    b = file_set(scen, "B")
    if kind == "start":
        cut_during(scen, DAEMON_UNIT, [CLI, *START, "--label", scen])
        return
    if kind == "boot":
        cli(*START, "--label", scen)
        write_set(b, clean=False, sync=True)
        say("CUT", scen, "stage=1 (transaction open, new set synced)")
        return
    if kind == "timeout":
        cli("start", "--allow-pending", "--timeout", "12s", "--label", scen)
        write_set(b, clean=False, sync=True)
        cut_during(scen, DAEMON_UNIT, None, timeout_s=120)
        return
    cli(*START, "--label", scen)
    if kind == "after-start":
        if spec.edit:
            write_set(b, clean=False, sync=spec.edit == "sync")
        say("CUT", scen, "after start returned", f"edit={spec.edit}")
        return
    write_set(b, clean=False, sync=(spec.edit or "sync") == "sync")
    if kind == "rollback":
        cut_during(scen, DAEMON_UNIT, [CLI, "rollback"])
    elif kind == "after-rollback":
        cli("rollback")
        say("CUT", scen, "after rollback returned")
    elif kind == "commit":
        cut_during(scen, DAEMON_UNIT, [CLI, "commit"])
    elif kind == "after-commit":
        cli("commit")
        say("CUT", scen, "after commit returned", f"edit={spec.edit}")
    else:
        raise ValueError(f"unknown scenario kind {kind!r}")


# ------------------------------------------------------------------------------- entries


def sd_notify(state: str) -> None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.send(state.encode())


def main_early() -> int:
    """Before netcfg-txn-boot-rollback: cut the boot-time restore at the scenario's event."""
    plan = cmdline()
    scen = plan.get("nct.early")
    if not scen:
        sd_notify("READY=1")
        return 0
    say("BOOT", f"early scenario={scen}")
    watch = SCENARIOS[scen].watch
    assert watch is not None, scen
    where, event, filt, n = watch
    w = Watch(_watch_dir(where), event, filt)
    sd_notify("READY=1")
    t0 = time.monotonic()

    def boot_unit_running() -> bool:
        # Until it has started and finished: give it the whole boot.
        return time.monotonic() - t0 < 5 or os.path.exists(os.path.join(CGROUP, BOOT_UNIT))

    if not w.wait(_resolve_n(n, scen), 300, boot_unit_running):
        say("MISSED", scen, f"boot-rollback made {w.count} {event} events")
        return 0
    state = freeze(BOOT_UNIT)
    say("CUT", scen, f"stage=2 event={event}#{n}", f"name={w.names[-1]}", BOOT_UNIT, state)
    time.sleep(3600)
    return 0


def main() -> int:
    plan = cmdline()
    say("BOOT", " ".join(f"{k}={v}" for k, v in sorted(plan.items())))
    try:
        if "nct.check" in plan:
            check(plan["nct.check"])
        if "nct.run" in plan:
            run(plan["nct.run"])
        if plan.get("nct.final"):
            say("DONE")
            subprocess.run(["systemctl", "--no-block", "poweroff"], check=False)
            return 0
    except Exception as e:  # the host must hear about it, or it waits for its timeout
        say("ERROR", f"{type(e).__name__}: {e}".replace("\n", " "))
        return 1
    time.sleep(3600)  # the host kills the VM: that is the power cut
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "early":
        sys.exit(main_early())
    sys.exit(main())
