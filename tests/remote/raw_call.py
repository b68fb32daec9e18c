# SPDX-License-Identifier: GPL-3.0-or-later
"""One raw HTTPS request from inside a peer namespace, with bytes exactly as given (bodies and
header values in hex, so a test can send what no well-behaved client would). Prints one JSON
line: {"status": N, "body": <the parsed JSON reply, or the raw text>}.
argv: JSON {"host", "port", "ca", "method", "path", "headers": {name: hex}, "body": hex}."""

from __future__ import annotations

import http.client
import json
import ssl
import sys


def main() -> None:
    spec = json.loads(sys.argv[1])
    ctx = ssl.create_default_context(cafile=spec["ca"])
    conn = http.client.HTTPSConnection(spec["host"], spec["port"], context=ctx, timeout=30)
    try:
        conn.putrequest(spec["method"], spec["path"], skip_accept_encoding=True)
        body = bytes.fromhex(spec.get("body", ""))
        for name, value in spec.get("headers", {}).items():
            conn.putheader(name, bytes.fromhex(value))
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = raw.decode("utf-8", "replace")
    print(json.dumps({"status": resp.status, "body": doc}))


if __name__ == "__main__":
    main()
