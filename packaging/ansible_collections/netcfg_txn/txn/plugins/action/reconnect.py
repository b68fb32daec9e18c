# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: netcfg-txn developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reach the host again on a NEW connection, then extend or commit its transaction.

Why a new connection: a ControlPersist master opened before the change can keep working after a
change that blocks every new connection, so a confirm sent through it proves nothing. We drop the
master (``reset``) and retry with a short connect timeout, bounded by the transaction's deadline:
a host that does not answer before its deadline is left to its own timer, and once the deadline
(plus a grace period) has passed we look again, so the result says whether it came back on its
old configuration.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

MODULE = "netcfg_txn.txn.transaction"
UNITS = {"h": 3600, "m": 60, "s": 1}


def duration_s(text):
    """Seconds in a netcfg-txn duration (90, 90s, 5m, 1h30m), or None."""
    text = str(text).strip().lower()
    if text.isdigit():
        return int(text)
    total, num = 0, ""
    for ch in text:
        if ch.isdigit():
            num += ch
        elif ch in UNITS and num:
            total, num = total + int(num) * UNITS[ch], ""
        else:
            return None
    return total if text and not num else None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        (
            "id",
            "token",
            "deadline",
            "margin_s",
            "grace_s",
            "connect_timeout",
            "delay",
            "apply_job",
            "hold",
            "commit",
            "rearmed",
        )
    )

    def _attempt(self, task_vars, module_args):
        try:
            self._connection.reset()
        except AttributeError:
            pass
        return self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)

    def _try(self, task_vars, module_args):
        """(result, None) once the module ran over a new connection, or (None, why not)."""
        try:
            res = self._attempt(task_vars, module_args)
        except AnsibleError as e:  # AnsibleConnectionFailure and friends: not reachable yet
            return None, to_text(e).strip().splitlines()[-1:] or ["unreachable"]
        if res.get("unreachable"):
            return None, [to_text(res.get("msg", "unreachable"))]
        return res, None

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args
        txn_id = args.get("id")
        if not txn_id:
            return dict(failed=True, msg="reconnect needs id (the id returned by state=started)")
        try:
            deadline = float(args.get("deadline"))
        except (TypeError, ValueError):
            return dict(failed=True, msg="reconnect needs deadline (seconds since the epoch, "
                        "the 'deadline' returned by state=started)")  # fmt: skip
        rearmed = args.get("rearmed")
        if rearmed:
            secs = duration_s(rearmed)
            if secs is None:
                return dict(failed=True, msg="reconnect: rearmed must be a duration like 90, 90s, "
                            "5m or 1h30m, got %r" % (rearmed,))  # fmt: skip
            # the apply job re-armed the deadline before this task began (or is about to)
            deadline = max(deadline, time.time() + secs)
        margin = float(args.get("margin_s", 3))
        grace = float(args.get("grace_s", 30))
        delay = float(args.get("delay", 1))
        connect_timeout = int(args.get("connect_timeout", 5))
        self._connect_timeout = connect_timeout
        token = args.get("token")
        commit = boolean(args.get("commit", False), strict=False)
        hold = args.get("hold")
        job = args.get("apply_job")
        if self._task.check_mode:
            return dict(skipped=True, msg="reconnect does nothing in check mode")

        try:
            self._connection.set_option("timeout", connect_timeout)
        except (AttributeError, KeyError, AnsibleError):
            pass
        # One module run per attempt, on a new connection each time: wait for the apply job,
        # then commit (or extend); its success is the proof that new connections get through.
        final_args = {"id": txn_id, "token": token}
        if commit:
            final_args["state"] = "committed"
        elif hold:
            final_args.update(state="extended", timeout=hold)
        else:
            final_args["state"] = "status"
        if job:
            # Wait on the host for the apply job, then commit in the same round trip if this
            # connection was opened after the job ended (the module compares the times); if it
            # was opened before, the change may have let it survive, so it proves nothing: the
            # module leaves the transaction alone and we come back on yet another connection.
            final_args.update(apply_job=job, fresh_connection=True,
                              async_dir=self.get_shell_option("async_dir", default="~/.ansible_async"))  # fmt: skip
        began = time.time()
        why = ["not tried"]
        final = None
        connections = 0
        while True:
            if "apply_job" in final_args:
                final_args["apply_wait"] = max(1, int(deadline - margin - time.time()))
            connections += 1
            final, why = self._try(task_vars, final_args)  # _try resets: a new connection
            if final is not None and final.get("stale_connection") and not final.get("failed"):
                # The job has ended well by now: a connection opened after this reply is proof.
                for key in ("apply_job", "apply_wait", "async_dir"):
                    final_args.pop(key, None)
                if final.get("connection_opened_at") is None:  # the host cannot tell: trust reset
                    final_args.pop("fresh_connection", None)
                else:  # and the host checks that the next one really is new
                    final_args["fresh_after"] = final["host_time"]
                final, why = None, ["the connection predated the end of the apply job"]
                if time.time() + connect_timeout <= deadline - margin:
                    continue
            if final is not None or time.time() + delay + connect_timeout > deadline - margin:
                break
            time.sleep(delay)
        reached_after = round(time.time() - began, 1)
        if final is None:
            return self._cut(task_vars, result, txn_id, deadline, grace, delay, began, why, None)
        if final.get("failed"):
            if final.get("outcome") not in (None, "open") or (final.get("error") or {}).get(
                "code"
            ) in ("no-transaction", "not-found"):
                # reachable, but the transaction is gone: its timer got there first
                return self._cut(task_vars, result, txn_id, deadline, grace, delay, began, why, final)
            # reachable but failed (the apply command, a refused commit): roll back now rather
            # than when the batch's slowest host is done, which may be past this deadline
            try:
                rb = self._execute_module(module_name=MODULE, task_vars=task_vars,
                                          module_args={"state": "rolled_back", "id": txn_id,
                                                       "token": token})  # fmt: skip
            except AnsibleError as e:
                rb = {"failed": True, "msg": to_text(e)}
            final.update(cut=False, reached_after_s=reached_after, rolled_back=not rb.get("failed"),
                         msg="%s; %s" % (final.get("msg"), "rolled back at once"
                                         if not rb.get("failed") else "rollback: %s" % rb.get("msg")))  # fmt: skip
            return final
        if final_args["state"] == "status":
            txn = (final.get("status") or {}).get("transaction") or {}
            if txn.get("id") != txn_id:
                return self._cut(task_vars, result, txn_id, deadline, grace, delay, began, why, final)
        result.update(final)
        result.update(
            failed=False,
            cut=False,
            id=txn_id,
            reached_after_s=reached_after,
            connections=connections,
            msg="reached over a new connection after %.1fs%s" % (
                reached_after, "; committed" if commit else "; deadline extended" if hold else ""),
        )  # fmt: skip
        return result

    def _cut(self, task_vars, result, txn_id, deadline, grace, delay, began, why, status):
        """The host did not answer with our transaction open in time: it broke its own path."""
        host = task_vars.get("inventory_hostname")
        waited = round(time.time() - began, 1)
        result.update(failed=True, cut=True, id=txn_id, waited_s=waited)
        self._late = ""
        if deadline - began < 3 * (self._connect_timeout + delay):
            # too little time for a fair try: say so, rather than only blame the host's path
            self._late = (" (only %.0fs of its deadline were left when the reconnect began: if "
                          "its path was fine, the timeout is too short for this batch)"
                          % max(0, deadline - began))  # fmt: skip
        if status is not None:  # reachable, but our transaction is gone: the timer got there first
            return self._ended(task_vars, result, host, txn_id, waited)
        # Wait for the deadline and the rollback, then look again: back on the old config?
        end = deadline + grace
        back = None
        while time.time() < end:
            back, _why = self._try(task_vars, {"state": "status"})
            if back is not None:
                break
            time.sleep(delay)
        if back is not None:
            return self._ended(task_vars, result, host, txn_id, waited)
        result["msg"] = (
            "%s broke its management path: no new connection for %.0fs, until its deadline "
            "(last error: %s); it was still unreachable %.0fs after the deadline, so its dead-man "
            "timer is rolling it back without us%s" % (host, waited, "; ".join(why), grace, self._late)
        )
        result["back_on_old_config"] = False
        return result

    def _ended(self, task_vars, result, host, txn_id, waited):
        look = self._execute_module(module_name=MODULE, task_vars=task_vars,
                                    module_args={"state": "committed", "id": txn_id})  # fmt: skip
        outcome, reason = look.get("outcome"), look.get("reason")
        result.update(outcome=outcome, reason=reason, back_on_old_config=outcome == "rolled-back")
        if outcome == "committed":  # e.g. its probes committed it (policy=probes) before we came
            result.update(failed=False, cut=False, changed=False,
                          msg="%s: transaction %s was already committed (reason: %s)"
                          % (host, txn_id, reason))  # fmt: skip
        elif outcome == "rolled-back":
            result["msg"] = (
                "%s broke its management path: no new connection reached it for %.0fs after the "
                "change, and its timer rolled transaction %s back (reason: %s); it answers again "
                "on its old configuration%s" % (host, waited, txn_id, reason, self._late)
            )
        else:
            result["msg"] = "%s: transaction %s ended %s (reason: %s) before the confirm: %s" % (
                host, txn_id, outcome, reason, look.get("msg"))  # fmt: skip
        return result
