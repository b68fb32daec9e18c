# SPDX-License-Identifier: GPL-3.0-or-later
"""A paced flood of bad requests against the daemon's control socket (aiohttp UnixConnector).

    python -m benchlib.flood --socket PATH --rate 1000 [--duration S] [--concurrency N]
    python -m benchlib.flood --url https://127.0.0.1:PORT --cafile CA [--new-connections] ...

Open loop: request i is sent at t0 + i/rate whatever the answers do (a request that finds every
connection busy waits for one; if more than ``--concurrency`` are pending the tick is counted as
``dropped``: the client, not the daemon, could not keep up). Runs until SIGTERM/SIGINT or the
duration, then prints one JSON document: counts by HTTP status, achieved rate, latency quantiles.

The mix, in turn: ``confirm`` with a wrong token (takes the daemon's state lock, then fails with
bad-token), ``start`` with a body that is not JSON (400 before the lock), an unknown path (404).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections import Counter

import aiohttp

BAD = [
    ("POST", "/v1/transactions/current/confirm", b"{}", {"X-Netcfg-Txn-Token": "not-the-token"}),
    ("POST", "/v1/transactions", b"{this is not json", {"Content-Type": "application/json"}),
    ("GET", "/v1/no/such/route", None, {}),
]


async def flood(
    target: str,
    rate: float,
    duration: float,
    concurrency: int,
    mix: list[tuple[str, str, bytes | None, dict[str, str]]],
    cafile: str | None = None,
    new_connections: bool = False,
) -> dict[str, object]:
    """``target``: a Unix socket path, or an https:// base URL (the remote TLS API)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    status: Counter[str] = Counter()
    lat: list[float] = []
    pending: set[asyncio.Task[None]] = set()
    dropped = 0
    conn: aiohttp.BaseConnector
    if target.startswith("https://"):
        import ssl

        ctx = ssl.create_default_context(cafile=cafile)
        conn = aiohttp.TCPConnector(ssl=ctx, limit=concurrency, force_close=new_connections)
        base = target.rstrip("/")
    else:
        conn = aiohttp.UnixConnector(path=target, limit=concurrency, force_close=new_connections)
        base = "http://localhost"
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:

        async def one(i: int) -> None:
            method, path, body, headers = mix[i % len(mix)]
            t = time.perf_counter()
            try:
                async with s.request(method, f"{base}{path}", data=body, headers=headers) as r:
                    await r.read()
                    status[str(r.status)] += 1
            except Exception as e:
                status[type(e).__name__] += 1
            lat.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        i = 0
        while not stop.is_set() and time.perf_counter() - t0 < duration:
            due = t0 + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                    break
                except TimeoutError:
                    pass
            if len(pending) >= concurrency:
                dropped += 1
            else:
                task = asyncio.create_task(one(i))
                pending.add(task)
                task.add_done_callback(pending.discard)
            i += 1
        elapsed = time.perf_counter() - t0
        if pending:
            await asyncio.wait(pending, timeout=30)
    lat.sort()

    def q(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3, 2) if lat else None

    done = sum(status.values())
    return {
        "ticks": i,
        "completed": done,
        "dropped": dropped,
        "elapsed_s": round(elapsed, 2),
        "rate_per_s": round(done / elapsed, 1) if elapsed else 0,
        "status": dict(status),
        "latency_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": q(1.0)},
    }


def main() -> int:
    p = argparse.ArgumentParser()
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="the control socket")
    where.add_argument("--url", help="https://HOST:PORT of the remote API")
    p.add_argument("--cafile", help="CA bundle that signed the server certificate (--url)")
    p.add_argument(
        "--new-connections", action="store_true", help="one connection (TLS handshake) a request"
    )
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument(
        "--mix",
        choices=["bad", "notfound"],
        default="bad",
        help="bad: the mix above; notfound: only the 404 (no lock, cheapest)",
    )
    a = p.parse_args()
    mix = BAD if a.mix == "bad" else BAD[2:]
    t_cpu = time.process_time()
    doc = asyncio.run(
        flood(
            a.socket or a.url, a.rate, a.duration, a.concurrency, mix, a.cafile, a.new_connections
        )
    )
    doc["client_cpu_s"] = round(time.process_time() - t_cpu, 2)
    json.dump(doc, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
