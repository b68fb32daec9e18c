# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pieces of scripts/bench: result rows, statistics, a sandboxed daemon, file trees."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import platform
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: netcfg-txn, netcfg-txnd


@dataclasses.dataclass
class Row:
    """One line of the table: a median next to its baseline's median, and the target verdict."""

    name: str
    value: float | None  # median, in ``unit``
    unit: str  # "ms", "s", "MB", "/s", "pkts", "%"
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""  # human text, e.g. "≤ 2× baseline"
    met: bool | None = None
    n: int = 0
    note: str = ""  # printed as a footnote under the table
    variant: str = ""  # printed in the name, in parentheses
    samples: list[float] = dataclasses.field(default_factory=list)
    baseline_samples: list[float] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline


def median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "ms":
        return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"
    if unit == "s":
        return f"{v:.2f} s"
    if unit == "MB":
        return f"{v:.1f} MB"
    if unit in ("pkts", "count"):
        return f"{v:g}"
    if unit == "/s":
        return f"{v:.2f}/s"
    if unit == "%":
        return f"{v:.1f} %"
    return f"{v:g} {unit}"


def render(rows: Sequence[Row]) -> str:
    """A Markdown table (also readable as plain text)."""
    head = [
        "Measurement",
        "netcfg-txn (median)",
        "Baseline (median, same run)",
        "Ratio",
        "Target",
        "Met",
        "n",
    ]
    lines = []
    notes: list[str] = []
    for r in rows:
        base = f"{fmt(r.baseline, r.unit)} {r.baseline_name}".strip() if r.baseline_name else "-"
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None and r.unit not in ("pkts",) else "-"
        met = {True: "PASS", False: "**MISS**", None: "-"}[r.met]
        name = r.name + (f" ({r.variant})" if r.variant else "")
        if r.note:
            notes.append(r.note)
            name += f" [{len(notes)}]"
        lines.append([name, fmt(r.value, r.unit), base, ratio, r.target or "-", met, str(r.n)])
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(head)]

    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [row(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [row(x) for x in lines]
    if notes:
        out.append("")
        out += [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(out)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kw)


def sync() -> None:
    os.sync()


# ------------------------------------------------------------------------------ file trees


def make_tree(top: Path, nfiles: int, size: int, per_dir: int = 100) -> list[Path]:
    """``nfiles`` files of ``size`` random bytes in ``top/dNNN/fNNNNN`` (100 per directory)."""
    paths = []
    for i in range(nfiles):
        d = top / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        p = d / f"f{i:05d}"
        p.write_bytes(os.urandom(size))
        paths.append(p)
    return paths


def rewrite_tree(paths: Sequence[Path]) -> None:
    """New content for every file (same size), written in place like an editor without rename."""
    for p in paths:
        size = p.stat().st_size
        p.write_bytes(os.urandom(size))


def write_config(path: Path, include: Sequence[str], extra: str = "") -> Path:
    globs = ", ".join(f'"{g}"' for g in include)
    path.write_text(
        "[files]\npresets = []\n"
        f"include = [{globs}]\n"
        'max_total_size = "2GiB"\n'
        '[timer]\ndefault = "1h"\nmin = "1s"\n'
        '[apply]\nbackend = "none"\n' + extra
    )
    return path


# ---------------------------------------------------------------------------------- daemon


class Daemon:
    """netcfg-txnd on a sandbox root; stderr lines are timestamped (wall clock) as they arrive."""

    def __init__(
        self,
        root: Path,
        state: Path,
        config: Path,
        socket_path: Path,
        *,
        log_level: str = "info",
        env: dict[str, str] | None = None,
    ) -> None:
        self.root, self.state, self.config, self.socket = root, state, config, socket_path
        self.log_level = log_level
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 30.0) -> None:
        from netcfg_txn import client

        argv = [
            str(sys.modules[__name__].BIN / "netcfg-txnd"),
            "--root",
            str(self.root),
            "--config",
            str(self.config),
            "--state-dir",
            str(self.state),
            "--socket",
            str(self.socket),
            "--log-level",
            self.log_level,
        ]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        end = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"netcfg-txnd exited {self.proc.returncode}: {self.tail()}")
            if self.socket.exists():
                with contextlib.suppress(Exception):
                    client.call(str(self.socket), "GET", "/v1/version", timeout_s=5)
                    return
            if time.monotonic() > end:
                raise RuntimeError(f"netcfg-txnd not ready after {timeout_s:g}s: {self.tail()}")
            time.sleep(0.02)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            t = time.time()
            with self._cond:
                self.lines.append((t, raw.decode(errors="replace").rstrip("\n")))
                self._cond.notify_all()

    def tail(self, n: int = 15) -> str:
        with self._cond:
            return "\n".join(x for _, x in self.lines[-n:])

    def wait_line(self, needle: str, start: int = 0, timeout_s: float = 30.0) -> tuple[float, str]:
        """The first log line at index >= ``start`` containing ``needle`` (time it arrived)."""
        end = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for t, line in self.lines[start:]:
                    if needle in line:
                        return t, line
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no daemon log line with {needle!r}: {self.tail()}")
                self._cond.wait(left)

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        from netcfg_txn import client

        return client.call(str(self.socket), method, path, body, token=token, timeout_s=600)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        self.proc = None


# --------------------------------------------------------------------------------- inotify

IN_MOVED_TO = 0x080
_libc = ctypes.CDLL(None, use_errno=True)


class MoveWatch:
    """Records the wall time at which each file is renamed into ``directory`` (IN_MOVED_TO):
    the moment a restored file appears under its name. ``close()`` stops the reader thread before
    it closes the inotify fd (a recycled fd number must never be read by a stale thread)."""

    def __init__(self, directory: Path) -> None:
        self.fd = _libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if _libc.inotify_add_watch(self.fd, str(directory).encode(), IN_MOVED_TO) < 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
        self._stop_r, self._stop_w = os.pipe()
        self.events: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            t = time.time()
            off = 0
            with self._cond:
                while off + 16 <= len(buf):
                    _wd, _mask, _cookie, size = struct.unpack_from("iIII", buf, off)
                    name = buf[off + 16 : off + 16 + size].rstrip(b"\0").decode(errors="replace")
                    off += 16 + size
                    if not name.startswith("."):
                        self.events.append((t, name))
                self._cond.notify_all()

    def wait(self, name: str, timeout_s: float) -> float:
        end = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for t, n in self.events:
                    if n == name:
                        return t
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{name} was not renamed into place within {timeout_s:g}s")
                self._cond.wait(left)

    def clear(self) -> None:
        with self._cond:
            self.events.clear()

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        for fd in (self.fd, self._stop_r, self._stop_w):
            os.close(fd)


# ---------------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "disk": disk_description(Path("/var/tmp")),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_path": sys.executable,
    }


def disk_description(path: Path) -> str:
    dev = os.stat(path).st_dev
    fstype, source = "?", "?"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            major, minor = (int(x) for x in parts[2].split(":"))
            if os.makedev(major, minor) == dev:
                sep = parts.index("-")
                fstype, source = parts[sep + 1], parts[sep + 2]
    name = Path(source).name
    info = f"{source} ({fstype})"
    rot = Path(f"/sys/block/{name}/queue/rotational")
    if rot.exists():
        kind = "virtio disk" if name.startswith("vd") else "disk"
        info += f", {kind}, rotational={rot.read_text().strip()}"
    return info


@contextlib.contextmanager
def workdir(base: Path | None, keep: bool) -> Iterator[Path]:
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="nct-bench-", dir=str(base or "/var/tmp")))
    try:
        yield d
    finally:
        if keep:
            print(f"bench: kept {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)


def progress(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)
