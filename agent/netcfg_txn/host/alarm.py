# SPDX-License-Identifier: GPL-3.0-or-later
"""A failed rollback, shown where monitoring looks: ``systemctl --failed`` lists the transient
unit ``netcfg-txn-rollback-failed.service`` (its description says what to do) until a later
transaction ends well or ``systemctl reset-failed`` clears it. Only when systemd is PID 1 of the
host we act on; the boot unit's own failure covers rollbacks at boot."""

from __future__ import annotations

import logging

from netcfg_txn.core.errors import CommandFailed
from netcfg_txn.host.runner import Runner, pid1_can_run_for_us, run

log = logging.getLogger(__name__)

UNIT = "netcfg-txn-rollback-failed.service"


def update(txn_id: str, failed: bool, summary: str, runner: Runner = run) -> None:
    """Raise the alarm for a failed rollback, or clear it once a transaction ended well."""
    if not pid1_can_run_for_us():
        return
    try:
        runner(["systemctl", "reset-failed", UNIT], timeout_s=15, check=False)
        if failed:
            runner(
                ["systemd-run", f"--unit={UNIT}", "--quiet",
                 f"--description=netcfg-txn: rollback of {txn_id} FAILED "
                 "(netcfg-txn status; retry: netcfg-txn rollback --force)",
                 "--", "/bin/sh", "-c", 'echo "$1" >&2; exit 1', "sh", summary[-1500:]],
                timeout_s=15,
            )  # fmt: skip
    except CommandFailed as e:  # the journal entry of the failure stands anyway
        log.warning("cannot mark the failed rollback in systemd: %s", e)
