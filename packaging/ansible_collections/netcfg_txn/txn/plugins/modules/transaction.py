#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: netcfg-txn developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: transaction
short_description: Start, commit, roll back or inspect a netcfg-txn network transaction
version_added: "0.1.0"
description:
  - Runs on the managed host and talks to the local C(netcfg-txnd) daemon over its root-only
    control socket (the HTTP API the C(netcfg-txn) CLI uses, with the same error codes).
  - O(state=started) snapshots the managed network configuration files and arms the daemon's
    dead-man timer. Unless the transaction is committed before the deadline, the daemon restores
    the snapshot and bounces only the interfaces whose configuration changed.
  - O(state=committed) keeps the change, O(state=rolled_back) restores the snapshot now,
    O(state=extended) moves the deadline to now + O(timeout), O(state=status) only reports.
  - The confirm must prove that the host is still reachable B(through the changed network), on a
    B(new) connection. An SSH connection kept open by C(ControlPersist) can survive a change that
    blocks new connections (a firewall rule, a moved address with the old one still routed, a
    broken route for new flows). Run O(state=committed) through M(netcfg_txn.txn.reconnect) or the
    M(netcfg_txn.txn.safe_change) role, which reset the connection first.
  - Idempotent. A repeated O(state=committed) of a committed transaction, or O(state=rolled_back)
    of a rolled-back one, reports C(changed=false). O(state=committed) of a transaction the timer
    already rolled back fails and says so.
author:
  - netcfg-txn developers (@netcfg-txn)
options:
  state:
    description:
      - What to do.
    type: str
    required: true
    choices: [started, committed, rolled_back, extended, status]
  id:
    description:
      - The transaction to act on (the RV(id) returned by O(state=started)).
      - With O(state=started), an open transaction with this id is reported unchanged instead of
        starting a new one.
      - Without it, O(state=committed), O(state=rolled_back) and O(state=extended) act on the open
        transaction, whichever it is.
    type: str
    aliases: [txn_id]
  token:
    description:
      - The per-transaction token returned by O(state=started). Local root does not need it;
        given, the daemon checks it.
    type: str
  timeout:
    description:
      - Dead-man timeout for O(state=started) (default - the host's C([timer] default)), or the new
        deadline from now for O(state=extended). C(90), C(90s), C(5m), C(1h30m).
    type: str
  label:
    description:
      - A note shown in C(netcfg-txn status) and in the history.
    type: str
  allow_pending:
    description:
      - Start even if managed files were edited outside a transaction since the last one.
    type: bool
    default: false
  probes:
    description:
      - Probes the host runs itself, e.g. C(tcp:198.51.100.1:22), C(icmp:198.51.100.1),
        C(https://example.test/health), C(iface:eth0).
    type: list
    elements: str
    default: []
  policy:
    description:
      - C(manual) (commit needed), C(probes) (auto-commit when every probe passes) or
        C(probes-or-manual).
    type: str
    choices: [manual, probes, probes-or-manual]
  apply_job:
    description:
      - With O(state=status), O(state=committed) or O(state=extended), first wait for this
        C(async) job (the C(ansible_job_id) of the command that applied the change, started with
        C(poll=0)) to finish, and fail without committing if it failed. The commit must then go
        over a connection opened B(after) the job finished (M(netcfg_txn.txn.reconnect) does
        that), or it proves nothing about the new network.
    type: str
  apply_wait:
    description:
      - Seconds to wait for O(apply_job) to finish.
    type: int
    default: 120
  fresh_connection:
    description:
      - Commit, extend or report only if the SSH connection this module runs on was opened
        B(after) O(apply_job) finished and after O(fresh_after) (the start time of the
        per-connection C(sshd) process against the job's result file and that time). Otherwise
        nothing changes and RV(stale_connection) is returned, so that the caller reconnects and
        asks again (M(netcfg_txn.txn.reconnect) does). This saves a round trip when the new
        connection is opened after the apply anyway, and never commits through a connection the
        change may have let survive.
    type: bool
    default: false
  fresh_after:
    description:
      - With O(fresh_connection), the connection must also have been opened after this time
        (seconds since the epoch, host clock; the RV(host_time) of a RV(stale_connection) reply).
    type: float
  async_dir:
    description:
      - Where C(async) jobs write their results (Ansible's C(async_dir) shell option).
    type: path
    default: ~/.ansible_async
  socket:
    description:
      - The daemon's control socket.
    type: path
    default: /run/netcfg-txn/control
  request_timeout:
    description:
      - Seconds to wait for the daemon's answer (a rollback bounces interfaces and may take a
        while).
    type: int
    default: 300
notes:
  - Needs root on the managed host (the control socket is root-only); use C(become).
  - Check mode predicts the outcome from the daemon's status without changing anything.
  - The returned RV(token) lets a remote peer confirm over the HTTPS API; it is a secret.
    Use C(no_log) on tasks that print registered results.
seealso:
  - module: netcfg_txn.txn.reconnect
  - name: netcfg-txn README, Fleet rollouts
    description: The rollout pattern and its measured overhead.
    link: https://github.com/netcfg-txn/netcfg-txn#fleet-rollouts
"""

EXAMPLES = r"""
- name: Start a transaction (the host rolls back by itself unless committed within 5 minutes)
  netcfg_txn.txn.transaction:
    state: started
    timeout: 5m
    label: "ansible {{ ansible_play_name }}"
  register: txn

- name: Change the config
  ansible.builtin.template:
    src: interfaces.j2
    dest: /etc/network/interfaces.d/uplink
    mode: "0644"

- name: Apply it detached from this SSH connection, so a cut path cannot hang the play
  ansible.builtin.shell: ifdown uplink; ifup uplink
  async: 120
  poll: 0
  register: apply

- name: Reach the host on a new connection, then commit
  netcfg_txn.txn.reconnect:
    id: "{{ txn.id }}"
    deadline: "{{ txn.deadline }}"
    apply_job: "{{ apply.ansible_job_id }}"
    commit: true

- name: Or roll back at once
  netcfg_txn.txn.transaction:
    state: rolled_back
    id: "{{ txn.id }}"

- name: What is open, what happened last
  netcfg_txn.txn.transaction:
    state: status
  register: st
"""

RETURN = r"""
id:
  description: The transaction's id.
  returned: when a transaction was started or acted on
  type: str
  sample: 20261202T042219-95fef3
token:
  description: The per-transaction token (only from O(state=started)); a secret.
  returned: when a transaction was started
  type: str
deadline:
  description: The deadline as seconds since the epoch (host clock).
  returned: when a transaction is open
  type: float
remaining_s:
  description: Seconds left before the host rolls back by itself.
  returned: when a transaction is open
  type: float
outcome:
  description: How the transaction ended (C(committed), C(rolled-back), C(failed)) or C(open).
  returned: always except for O(state=status)
  type: str
reason:
  description: Why it ended (C(confirmed), C(timeout), C(requested), C(health), C(boot), ...).
  returned: when it ended
  type: str
transaction:
  description: The daemon's description of the transaction (no token).
  returned: when a transaction was acted on
  type: dict
status:
  description: The daemon's status (open transaction, edited files, pending edits, last outcome).
  returned: with O(state=status)
  type: dict
stale_connection:
  description:
    - With O(fresh_connection), true when nothing was done because this connection was opened
      before the apply job finished or before O(fresh_after); reconnect and ask again.
  returned: when true
  type: bool
host_time:
  description: The host's clock when it answered RV(stale_connection) (for O(fresh_after)).
  returned: with RV(stale_connection)
  type: float
connection_opened_at:
  description:
    - When the connection that got RV(stale_connection) was opened (host clock), or null when the
      host cannot tell (not over SSH, /proc hidden); then only the caller's reset can vouch.
  returned: with RV(stale_connection)
  type: float
error:
  description: The daemon's error (C(code), C(message), C(hint)) when it refused.
  returned: on failure from the daemon
  type: dict
"""

import http.client
import json
import os
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from urllib.parse import quote

TOKEN_HEADER = "X-Netcfg-Txn-Token"

# One explanation per error code of the CLI and the API (README, "Exit codes").
CODE_HELP = {
    "busy": "another transaction is open on this host (or the daemon's state lock stayed busy);"
    " commit or roll it back first",
    "pending-edits": "managed files were edited outside a transaction since the last one;"
    " review them, or set allow_pending=true to snapshot them as they are",
    "no-transaction": "no such open transaction (none, or it already ended)",
    "not-found": "no such transaction",
    "unavailable": "the netcfg-txn daemon is not reachable on this host"
    " (is netcfg-txnd running? is this task running as root?)",
    "not-permitted": "not permitted (the control socket is root-only: use become)",
    "bad-token": "the transaction token does not match",
    "config-invalid": "the host's netcfg-txn configuration or a managed file is invalid",
    "too-large": "the managed files exceed the configured size limits",
    "rejected-config": "this file set was rolled back before; starting again needs an explicit force",
    "not-kept": "the change was not kept and was rolled back",
    "usage": "bad arguments",
    "bad-request": "the daemon rejected the request",
    "failed": "the daemon could not complete the operation",
    "command-failed": "a command run by the daemon failed",
    "internal": "internal error in netcfg-txnd (a bug; see its journal)",
}


class DaemonError(Exception):
    def __init__(self, error):
        self.error = error
        Exception.__init__(self, error.get("message", ""))

    @property
    def code(self):
        return self.error.get("code") or "internal"

    def msg(self):
        what = CODE_HELP.get(self.code, "the daemon refused")
        out = "netcfg-txn %s: %s: %s" % (self.code, what, self.error.get("message") or "")
        if self.error.get("hint"):
            out += " (hint: %s)" % self.error["hint"]
        return out


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class Daemon(object):
    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout

    def call(self, method, path, body=None, token=None):
        conn = UnixHTTPConnection(self.path, self.timeout)
        headers = {"Content-Type": "application/json"}
        if token:
            headers[TOKEN_HEADER] = token
        data = json.dumps(body).encode() if body is not None else None
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, socket.timeout) as e:
            raise DaemonError({"code": "unavailable", "message": "%s: %s" % (self.path, e)})
        finally:
            conn.close()
        try:
            doc = json.loads(raw)
        except ValueError:
            raise DaemonError(
                {"code": "internal", "message": "non-JSON reply (HTTP %s)" % resp.status}
            )
        if not isinstance(doc, dict):
            raise DaemonError({"code": "internal", "message": "malformed reply"})
        if not doc.get("ok"):
            raise DaemonError(doc.get("error") or {"code": "internal", "message": "no error"})
        return doc

    def status(self):
        return self.call("GET", "/v1/status")

    def lookup(self, txn_id):
        """The transaction with this id, open or finished, or None."""
        try:
            return self.call("GET", "/v1/transactions/%s" % quote(txn_id, safe=""))["transaction"]
        except DaemonError as e:
            if e.code in ("not-found", "no-transaction"):
                return None
            raise


def outcome_of(txn):
    return "open" if txn.get("phase") == "open" else txn.get("outcome") or txn.get("phase")


def described(txn, token=None):
    out = {
        "id": txn.get("id"),
        "transaction": txn,
        "outcome": outcome_of(txn),
        "reason": txn.get("reason"),
    }
    if txn.get("phase") == "open":
        out["deadline"] = txn.get("deadline_wall_s")
        out["remaining_s"] = txn.get("remaining_s")
    if token:
        out["token"] = token
    return out


def open_txn(status):
    return status.get("transaction") if status.get("state") != "idle" else None


def wait_job(module):
    """The finished result of the apply job, or fail: never commit over a failed apply."""
    p = module.params
    path = os.path.join(p["async_dir"], p["apply_job"])
    end = time.time() + p["apply_wait"]
    while True:
        try:
            with open(path) as f:
                job = json.load(f)
        except (OSError, ValueError):
            job = None  # not written yet, or being rewritten
        if job is not None and not (job.get("started") and not job.get("finished")):
            break
        if time.time() > end:
            module.fail_json(msg="the apply job %s had not finished after %ss; not committed"
                             % (p["apply_job"], p["apply_wait"]), apply=job)  # fmt: skip
        time.sleep(0.2)
    if job.get("failed") or job.get("rc", 0) != 0:
        tail = (job.get("stderr") or job.get("msg") or "")[-400:]
        module.fail_json(msg="the apply command failed (rc=%s): %s; not committed"
                         % (job.get("rc"), tail), apply=job)  # fmt: skip
    # async_wrapper renames the finished result into place: its ctime is when the job ended
    return os.stat(path).st_ctime


# Clock granularity on both sides (process start times count in clock ticks, file times in
# coarse kernel ticks): a connection opened closer than this to the end of the job proves nothing.
FRESH_MARGIN_S = 0.05


def connection_opened_at(pid=None):
    """Wall-clock time at which the SSH connection running this process was accepted: the start
    of the nearest sshd ancestor (sshd forks a process per connection; 'sshd-session' since
    OpenSSH 9.8). None when there is none (not over SSH) or /proc cannot tell."""
    try:
        tick = float(os.sysconf("SC_CLK_TCK"))
        pid = os.getppid() if pid is None else pid
        for dummy in range(32):
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            if comm.startswith("sshd"):
                # starttime (field 22) counts ticks since boot, suspend included: CLOCK_BOOTTIME
                ago = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / tick
                return time.time() - ago
            pid = int(fields[1])
            if pid <= 1:
                return None
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return None


def stale(module, job_ended=None):
    """None when this connection is fresh enough to act on (or freshness was not asked for),
    else the reply that says so (then nothing is changed)."""
    p = module.params
    if not p["fresh_connection"]:
        return None
    marks = [t for t in (job_ended, p["fresh_after"]) if t is not None]
    opened = connection_opened_at()
    if opened is not None and marks and opened >= max(marks) + FRESH_MARGIN_S:
        return None
    return dict(changed=False, stale_connection=True, host_time=time.time(),
                connection_opened_at=opened, msg="this connection was opened before the apply "
                "job ended (or cannot tell when): reconnect and ask again")  # fmt: skip


def run(module, daemon):
    p = module.params
    state = p["state"]
    want = p["id"]
    st = daemon.status()
    current = open_txn(st)

    if state == "status":
        if not module.check_mode:
            old = stale(module, wait_job(module) if p["apply_job"] else None)
            if old is not None:
                return old
        return dict(changed=False, status=st, **(described(current) if current else {}))

    if state == "started":
        if current is not None and want and current.get("id") == want:
            return dict(changed=False, msg="transaction %s is already open" % want,
                        **described(current))  # fmt: skip
        if module.check_mode:
            if current is not None:
                raise DaemonError({"code": "busy", "message": "transaction %s is open"
                                   % current.get("id")})  # fmt: skip
            if st.get("pending") and not p["allow_pending"]:
                raise DaemonError({"code": "pending-edits", "message": "changed outside a "
                                   "transaction: %s" % ", ".join(st["pending"])})  # fmt: skip
            return dict(changed=True, id=None, msg="would start a transaction")
        body = {"allow_pending": p["allow_pending"]}
        for key in ("timeout", "label", "policy"):
            if p[key] is not None:
                body[key] = p[key]
        if p["probes"]:
            body["probes"] = p["probes"]
        doc = daemon.call("POST", "/v1/transactions", body)
        txn = doc["transaction"]
        return dict(changed=True, msg="transaction %s started" % txn["id"],
                    **described(txn, doc.get("token")))  # fmt: skip

    # committed, rolled_back, extended: act on the open transaction if it is the one asked for
    if current is not None and (not want or current.get("id") == want):
        tid = current["id"]
        if module.check_mode:
            return dict(changed=True, msg="would move transaction %s to %s" % (tid, state),
                        **described(current))  # fmt: skip
        if state in ("committed", "extended"):
            old = stale(module, wait_job(module) if p["apply_job"] else None)
            if old is not None:
                return dict(old, **described(current))
        path = "/v1/transactions/%s/" % quote(tid, safe="")
        if state == "committed":
            doc = daemon.call("POST", path + "confirm", {}, token=p["token"])
        elif state == "rolled_back":
            doc = daemon.call("POST", path + "rollback", {}, token=p["token"])
        else:
            if not p["timeout"]:
                module.fail_json(msg="state=extended needs timeout")
            doc = daemon.call("POST", path + "arm", {"timeout": p["timeout"]}, token=p["token"])
        txn = doc["transaction"]
        res = described(txn)
        if state == "rolled_back" and res["outcome"] != "rolled-back":
            return dict(failed=True, changed=True, msg="rollback of %s ended %s: %s"
                        % (tid, res["outcome"], txn.get("errors")), **res)  # fmt: skip
        changed = not doc.get("already_committed", False)
        return dict(changed=changed, msg="transaction %s %s" % (tid, state.replace("_", " ")),
                    **res)  # fmt: skip

    if not want:
        return dict(changed=False, msg="no transaction is open")
    txn = daemon.lookup(want)
    if txn is None:
        raise DaemonError({"code": "not-found", "message": "no transaction %s on this host" % want})
    res = described(txn)
    done = {"committed": "committed", "rolled_back": "rolled-back"}.get(state)
    if res["outcome"] == done:
        return dict(changed=False, msg="transaction %s already %s" % (want, done), **res)
    why = " (reason: %s)" % res["reason"] if res["reason"] else ""
    if res["outcome"] == "open":  # another transaction is open, not the one asked for
        raise DaemonError({"code": "no-transaction", "message": "transaction %s is not the open one"
                           % want})  # fmt: skip
    return dict(failed=True, changed=False, msg="transaction %s cannot be %s: it already ended %s%s"
                % (want, state.replace("_", " "), res["outcome"], why), **res)  # fmt: skip


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", required=True,
                       choices=["started", "committed", "rolled_back", "extended", "status"]),
            id=dict(type="str", aliases=["txn_id"]),
            token=dict(type="str", no_log=True),
            timeout=dict(type="str"),
            label=dict(type="str"),
            allow_pending=dict(type="bool", default=False),
            probes=dict(type="list", elements="str", default=[]),
            policy=dict(type="str", choices=["manual", "probes", "probes-or-manual"]),
            apply_job=dict(type="str"),
            apply_wait=dict(type="int", default=120),
            fresh_connection=dict(type="bool", default=False),
            fresh_after=dict(type="float"),
            async_dir=dict(type="path", default="~/.ansible_async"),
            socket=dict(type="path", default="/run/netcfg-txn/control"),
            request_timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )  # fmt: skip
    daemon = Daemon(module.params["socket"], module.params["request_timeout"])
    try:
        result = run(module, daemon)
    except DaemonError as e:
        module.fail_json(msg=e.msg(), error=e.error)
    if result.get("failed"):
        result.pop("failed")
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
