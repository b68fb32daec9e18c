# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers of the big/unreadable-file fault cases: peak RSS of a process, and the daemon's mount
namespace for faults only the daemon must see."""

from __future__ import annotations

import subprocess
from pathlib import Path


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


# Runs a command and reports its peak RSS (ru_maxrss of its only child) on stderr's last line.
RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:])\n"
    "kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'PEAK_RSS_KB={kb}', file=sys.stderr)\n"
    "sys.exit(r.returncode)\n"
)


def in_mount_ns(pid: int, *argv: str) -> None:
    """Run ``argv`` inside the mount namespace of ``pid`` (the daemon's private one)."""
    subprocess.run(["nsenter", "-t", str(pid), "-m", *argv], check=True, timeout=30)
