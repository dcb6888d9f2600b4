"""``corral watch``: jobs' state changes as they happen (``GET /v1/events``), one line
each, until Ctrl-C; ``--job ID`` follows one job, ``--all`` starts from the first event
the store has. Under ``--json`` each event is one JSON object per line."""

from __future__ import annotations

import json
import time

from ..client import Connection
from . import format as fmt


def line(e: dict) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(e["ts"]))
    arrow = f"{e['from']} -> {e['to']}" if e["from"] and e["from"] != e["to"] else e["to"]
    name = f" ({e['name']})" if e.get("name") else ""
    msg = f": {e['message']}" if e.get("message") else ""
    return fmt.printable(f"{when}  job {e['job']}{name} {e['user']}  {arrow} ({e['reason']}){msg}")


def cmd_watch(args) -> int:
    conn = Connection(args.home)
    after = 0 if args.all else None
    try:
        for e in conn.events(args.job, after):
            print(json.dumps(e) if args.json else line(e), flush=True)
    except KeyboardInterrupt:
        return 0
    return 0
