# SPDX-License-Identifier: GPL-3.0-or-later
"""The health-check options of ``start`` and ``try``: the same probe syntax as
``netcfg-txn remote start --probe``. Validated here (a usage error before any snapshot), sent to
the daemon as the start request's ``probes``, ``policy`` and ``probe_settings``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from netcfg_txn.core.errors import BadRequest, UsageError
from netcfg_txn.core.policy import ON_FAILURE, Policy, ProbeSettings, parse_confirm


def parse_setting(item: str) -> tuple[str, Any]:
    """``--probe-setting KEY=VALUE``: ``true``/``false`` and digits become bool and int."""
    key, eq, value = item.partition("=")
    if not eq:
        raise UsageError(f"--probe-setting {item!r}: expected KEY=VALUE")
    if value in ("true", "false"):
        return key, value == "true"
    if value.isdigit():
        return key, int(value)
    return key, value


def request(
    probes: tuple[str, ...], policy: str, settings: tuple[str, ...], on_failure: str | None
) -> dict[str, Any]:
    """The start request's probe fields; ``{}`` when no probe was given."""
    extra = dict(parse_setting(s) for s in settings)
    if on_failure is not None:
        extra["on_failure"] = on_failure
    body: dict[str, Any] = {}
    if probes:
        body["probes"] = list(probes)
    if policy != Policy.MANUAL.value:
        body["policy"] = policy
    if extra:
        body["probe_settings"] = extra
    if body and not probes:
        raise UsageError("--policy, --probe-setting and --probe-failure need at least one --probe")
    try:  # the daemon checks again against its [probes] defaults; this names a typo at once
        parse_confirm(body, ProbeSettings())
    except BadRequest as e:
        raise UsageError(e.message) from None
    return body


def probe_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --probe/--policy/--probe-setting/--probe-failure; the command gets ``probe_request``."""

    @functools.wraps(f)
    def wrapper(
        *args: Any,
        probes: tuple[str, ...],
        policy: str,
        probe_settings: tuple[str, ...],
        probe_failure: str | None,
        **kw: Any,
    ) -> Any:
        return f(*args, probe_request=request(probes, policy, probe_settings, probe_failure), **kw)

    for opt in reversed(
        [
            click.option(
                "--probe",
                "probes",
                multiple=True,
                metavar="SPEC",
                help="Health check, repeatable: tcp:HOST:PORT, icmp:HOST, iface:NAME, http(s)://…",
            ),
            click.option(
                "--probe-failure",
                type=click.Choice(ON_FAILURE),
                default=None,
                help="What a failing probe does after the settle time (default: rollback, "
                "reason health; 'ignore': the deadline decides).",
            ),
            click.option(
                "--policy",
                type=click.Choice([p.value for p in Policy]),
                default=Policy.MANUAL.value,
                show_default=True,
                help="Who may commit: manual (you), probes (passing probes), or either.",
            ),
            click.option(
                "--probe-setting",
                "probe_settings",
                multiple=True,
                metavar="KEY=VALUE",
                help="settle_s, interval_s, timeout_s, retries, rounds (default: [probes]).",
            ),
        ]
    ):
        wrapper = opt(wrapper)
    return wrapper
