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
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

MODULE = "netcfg_txn.txn.transaction"


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
        margin = float(args.get("margin_s", 3))
        grace = float(args.get("grace_s", 30))
        delay = float(args.get("delay", 1))
        connect_timeout = int(args.get("connect_timeout", 5))
        token = args.get("token")
        commit = bool(args.get("commit", False))
        hold = args.get("hold")
        job = args.get("apply_job")
        if self._task.check_mode:
            return dict(skipped=True, msg="reconnect does nothing in check mode")

        try:
            self._connection.set_option("timeout", connect_timeout)
        except (AttributeError, KeyError, AnsibleError):
            pass
        began = time.time()
        why = ["not tried"]
        status = None
        # 1. Reach the host on a new connection before its deadline.
        while True:
            status, why = self._try(task_vars, {"state": "status"})
            if status is not None or time.time() + delay + connect_timeout > deadline - margin:
                break
            time.sleep(delay)
        reached_after = round(time.time() - began, 1)
        txn = (status or {}).get("status", {}).get("transaction") if status else None
        if status is None or not txn or txn.get("id") != txn_id:
            return self._cut(task_vars, result, txn_id, deadline, grace, delay, began, why, status)

        # 2. The apply job, if it ran detached, must have finished and succeeded.
        if job:
            # what the async_status action passes its module: where the job wrote its result
            async_dir = self.get_shell_option("async_dir", default="~/.ansible_async")
            while True:
                try:
                    js = self._execute_module(module_name="ansible.builtin.async_status",
                                              module_args={"jid": job, "mode": "status", "_async_dir": async_dir},
                                              task_vars=task_vars)  # fmt: skip
                except AnsibleError as e:
                    js = {"failed": True, "msg": to_text(e)}
                if js.get("finished") or js.get("failed"):
                    break
                if time.time() + delay > deadline - margin:
                    js = {"failed": True, "msg": "the apply command was still running at the deadline"}
                    break
                time.sleep(delay)
            if js.get("failed") or js.get("rc", 0) != 0:
                tail = to_text(js.get("stderr") or js.get("msg") or "")[-400:]
                result.update(failed=True, cut=False, id=txn_id, apply=js,
                              msg="the apply command failed on %s (rc=%s): %s"
                              % (task_vars.get("inventory_hostname"), js.get("rc"), tail))  # fmt: skip
                return result

        # 3. Reachable with our transaction open: protect it from the deadline, or commit now.
        final = None
        if commit:
            final = self._execute_module(module_name=MODULE, task_vars=task_vars,
                                         module_args={"state": "committed", "id": txn_id,
                                                      "token": token})  # fmt: skip
        elif hold:
            final = self._execute_module(module_name=MODULE, task_vars=task_vars,
                                         module_args={"state": "extended", "id": txn_id,
                                                      "token": token, "timeout": hold})  # fmt: skip
        if final is not None and final.get("failed"):
            final.update(cut=False, reached_after_s=reached_after)
            return final
        result.update(final or {})
        result.update(
            changed=bool(final and final.get("changed")),
            failed=False,
            cut=False,
            id=txn_id,
            reached_after_s=reached_after,
            msg="reached over a new connection after %.1fs%s" % (
                reached_after, "; committed" if commit else "; deadline extended" if hold else ""),
        )  # fmt: skip
        return result

    def _cut(self, task_vars, result, txn_id, deadline, grace, delay, began, why, status):
        """The host did not answer with our transaction open in time: it broke its own path."""
        host = task_vars.get("inventory_hostname")
        waited = round(time.time() - began, 1)
        result.update(failed=True, cut=True, id=txn_id, waited_s=waited)
        if status is not None:  # reachable, but our transaction is gone: the timer got there first
            return self._ended(task_vars, result, host, txn_id, waited)
        # Wait for the deadline and the rollback, then look again: back on the old config?
        end = deadline + grace
        back = None
        while time.time() < end:
            back, _ = self._try(task_vars, {"state": "status"})
            if back is not None:
                break
            time.sleep(delay)
        if back is not None:
            return self._ended(task_vars, result, host, txn_id, waited)
        result["msg"] = (
            "%s broke its management path: no new connection for %.0fs, until its deadline "
            "(last error: %s); it was still unreachable %.0fs after the deadline, so its dead-man "
            "timer is rolling it back without us" % (host, waited, "; ".join(why), grace)
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
                "on its old configuration" % (host, waited, txn_id, reason)
            )
        else:
            result["msg"] = "%s: transaction %s ended %s (reason: %s) before the confirm: %s" % (
                host, txn_id, outcome, reason, look.get("msg"))  # fmt: skip
        return result
