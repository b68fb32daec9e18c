# SPDX-License-Identifier: GPL-3.0-or-later
"""Run one RemoteClient call (inside a peer namespace) and print one JSON line: the reply, or
the error's code/message/exit code. Used by the remote integration tests."""

from __future__ import annotations

import json
import sys
import time

from netcfg_txn.core.errors import NetcfgTxnError
from netcfg_txn.remote.client import RemoteClient


def main() -> None:
    spec = json.loads(sys.argv[1])
    t0 = time.monotonic()
    try:
        client = RemoteClient(**spec["client"])
        doc = getattr(client, spec["method"])(*spec.get("args", []), **spec.get("kwargs", {}))
        out = {"ok": True, "doc": doc}
    except NetcfgTxnError as e:
        out = {"ok": False, "code": e.code, "message": e.message, "exit": int(e.exit_code)}
    out["elapsed_s"] = time.monotonic() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
