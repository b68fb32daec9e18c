# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-task wall time of a playbook run (for scripts/fleet-bench): from a task's start to the
next task's start, summed by task name across batches, written as JSON to $NCTF_TIMINGS."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: nctf_timer
type: aggregate
short_description: per-task wall time as JSON (fleet benchmark)
description: Sums each task's wall time by name and writes the totals to $NCTF_TIMINGS.
requirements: [enable in ansible.cfg or ANSIBLE_CALLBACKS_ENABLED]
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible has no types: Any base
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "nctf_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._current: tuple[str, float] | None = None
        self.totals: dict[str, float] = {}

    def _close(self) -> None:
        if self._current is not None:
            name, began = self._current
            self.totals[name] = self.totals.get(name, 0.0) + time.monotonic() - began
            self._current = None

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._close()
        self._current = (task.get_name(), time.monotonic())

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._close()
        path = os.environ.get("NCTF_TIMINGS")
        if path:
            with open(path, "w") as f:
                json.dump(self.totals, f, indent=1)
