# SPDX-License-Identifier: GPL-3.0-or-later
"""Run inside the peer namespace: hypothesis-generated bodies and headers on every route.
Fails (exit 1) on any HTTP 5xx or non-JSON reply. argv: host port ca peer_token txn_id."""

from __future__ import annotations

import http.client
import json
import ssl
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HOST, PORT, CA, TOKEN, TXN = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
CTX = ssl.create_default_context(cafile=CA)
ROUTES = [
    ("GET", "/v1/version"),
    ("GET", "/v1/status"),
    ("GET", "/v1/history"),
    ("POST", "/v1/transactions"),
    ("GET", f"/v1/transactions/{TXN}"),
    ("POST", f"/v1/transactions/{TXN}/arm"),
    ("POST", f"/v1/transactions/{TXN}/confirm"),
    ("POST", f"/v1/transactions/{TXN}/rollback"),
    ("GET", "/v1/transactions/%2e%2e"),
    ("PUT", "/v1/transactions"),
    ("GET", "/v1/history?limit=-1"),
    ("GET", "/v1/diff"),
    ("GET", "/v1/plan"),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from(
    [
        "timeout",
        "label",
        "probes",
        "policy",
        "arm",
        "fail_fast",
        "rounds",
        "probe_settings",
        "force",
        "allow_pending",
        "x",
    ]
)
bodies = st.one_of(
    st.binary(max_size=200),
    st.dictionaries(keys, json_values, max_size=5).map(lambda d: json.dumps(d).encode()),
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
auth = st.sampled_from(["bearer", "wrong", "none", "garbage"])


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(ROUTES), bodies, auth, header_text, header_text)
def fuzz(route: tuple[str, str], body: bytes, who: str, txn_tok: str, ctype: str) -> None:
    headers = {"Content-Type": ctype or "application/json", "X-Netcfg-Txn-Token": txn_tok}
    if who == "bearer":
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif who == "wrong":
        headers["Authorization"] = "Bearer " + txn_tok
    elif who == "garbage":
        headers["Authorization"] = txn_tok
    conn = http.client.HTTPSConnection(HOST, PORT, context=CTX, timeout=10)
    try:
        conn.request(route[0], route[1], body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    assert resp.status < 500, (route, body, resp.status, raw[:300])
    doc = json.loads(raw)
    assert isinstance(doc.get("ok"), bool), raw[:300]


if __name__ == "__main__":
    fuzz()
    print("fuzz ok")
