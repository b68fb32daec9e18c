#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: netcfg-txn developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done by the action plugin of the same name (plugins/action/reconnect.py).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: reconnect
short_description: Reach a host on a new connection before its netcfg-txn deadline, then commit or extend
version_added: "0.1.0"
description:
  - Runs on the controller (an action plugin). It drops the connection to the host (for SSH the
    C(ControlPersist) master) and retries with a short connect timeout until the host answers on a
    B(new) connection with transaction O(id) still open, bounded by that transaction's
    O(deadline). An existing SSH connection can survive a change that blocks new ones, so only a
    new connection proves that the changed network still lets the controller in.
  - When the host answers, it waits for the detached apply job O(apply_job) (if given) to finish
    and checks that it succeeded, then commits (O(commit=true)) or moves the deadline to now +
    O(hold), so that a good host does not expire while the rest of its batch is still being
    waited for. All of that is one module run when the connection was opened after the job ended
    (the host compares the start of its per-connection C(sshd) process with the job's end); when
    it was opened earlier, nothing is committed through it and the action comes back on another
    new connection, which the host again checks is newer.
  - When the host does not answer before its deadline, the change broke its path. The action then
    waits until the deadline plus O(grace_s) and looks again; the result says whether the host's
    timer rolled it back and it answers on its old configuration (RV(back_on_old_config)), and the
    task fails with a message naming the host and why, so the play recap shows it.
  - Always bounded - it never waits past O(deadline) + O(grace_s).
author:
  - netcfg-txn developers (@netcfg-txn)
options:
  id:
    description: The transaction id returned by M(netcfg_txn.txn.transaction) with C(state=started).
    type: str
    required: true
  deadline:
    description:
      - The transaction's deadline in seconds since the epoch (the C(deadline) returned by M(netcfg_txn.txn.transaction)).
        Controller and host clocks are assumed to agree within O(margin_s).
    type: float
    required: true
  rearmed:
    description:
      - The apply command re-armed the deadline to now + this duration as it started (the
        M(netcfg_txn.txn.safe_change) role's apply does, e.g. C(5m)); the attempts are then bounded
        by the later of O(deadline) and the start of this task + O(rearmed).
    type: str
  token:
    description: The transaction token (local root does not need it).
    type: str
  commit:
    description: Commit the transaction once the host is reached (and the apply job succeeded).
    type: bool
    default: false
  hold:
    description:
      - Without O(commit), move the deadline to now + O(hold) once the host is reached, e.g. C(5m),
        to leave time for checks before the commit.
    type: str
  apply_job:
    description: The C(ansible_job_id) of the apply command started with C(async) and C(poll=0).
    type: str
  margin_s:
    description: Stop trying this many seconds before the deadline.
    type: float
    default: 3
  grace_s:
    description:
      - After giving up, how long past the deadline to wait for the host to come back on its old
        configuration before reporting it as still unreachable.
    type: float
    default: 30
  connect_timeout:
    description: Seconds per connection attempt.
    type: int
    default: 5
  delay:
    description: Seconds between attempts.
    type: float
    default: 1
notes:
  - Check mode skips it.
  - With the C(linear) strategy every host of a batch waits for the slowest one, so a host that cut
    its path holds the batch until its deadline; O(hold) keeps the good hosts' transactions armed
    meanwhile.
attributes:
  check_mode:
    support: none
    description: Skipped in check mode.
  action:
    support: full
    description: Runs on the controller as an action plugin.
seealso:
  - module: netcfg_txn.txn.transaction
"""

EXAMPLES = r"""
- name: Reach each host anew; good ones are committed, a cut one is reported and left to its timer
  netcfg_txn.txn.reconnect:
    id: "{{ txn.id }}"
    deadline: "{{ txn.deadline }}"
    apply_job: "{{ apply.ansible_job_id }}"
    commit: true
"""

RETURN = r"""
cut:
  description: True when the host could not be reached before its deadline (its change broke the path).
  returned: always
  type: bool
reached_after_s:
  description: Seconds until the first successful new connection.
  returned: when reached
  type: float
connections:
  description: New connections opened until the commit (1 when the apply had ended before the first).
  returned: when reached
  type: int
back_on_old_config:
  description: The host answered again after its deadline and its transaction was rolled back.
  returned: when cut
  type: bool
outcome:
  description: How the transaction ended (from the host), when it was committed or looked up.
  returned: when known
  type: str
"""
