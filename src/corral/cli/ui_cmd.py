"""``corral ui``: a link to the web dashboard, carrying a short-lived token for the caller.

Asks the daemon (over the socket, so the token is the caller's) for a ``submit``-scope
token named ``ui-<time>`` that expires in 12 hours (so the page can cancel, hold and
release the caller's jobs), and for the TCP listener's address; prints
``http(s)://HOST:PORT/ui/?token=...`` and opens it where a browser can show it
(``$DISPLAY`` or ``$WAYLAND_DISPLAY``). The browser trades the token for a cookie and the
address bar loses it (the gateway redirects), as Jupyter does.
"""

from __future__ import annotations

import json
import os
import sys
import time

from ..client import Connection
from ..errors import CorralError

#: How long a dashboard link works (the daemon's ``UI_SECONDS``).
EXPIRES = "12h"


def cmd_ui(args) -> int:
    conn = Connection(args.home)
    where = conn.request("GET", "/v1/ui/address")
    if not where.get("url"):
        from ..paths import Paths

        raise CorralError(f"the dashboard is served on the TCP listener, and this daemon has none: set "
                          f"`listen: 127.0.0.1:8765` in {Paths(args.home).config} and restart it "
                          "(`corral down && corral up`)")
    name = "ui-" + time.strftime("%Y%m%d-%H%M%S")
    made = conn.request("POST", "/v1/tokens", {"name": name, "scope": "submit", "expires": EXPIRES})
    url = f"{where['url']}?token={made['token']}"
    if args.json:
        print(json.dumps({"url": url, "token": {k: made.get(k) for k in ("id", "name", "user", "scope", "expires")}}))
    else:
        print(url)
        until = time.strftime("%H:%M", time.localtime(made["expires"])) if made.get("expires") else "never"
        print(f"the link signs the browser in as {made['user']} until {until} (token {made['name']}; "
              f"`corral token revoke {made['name']}` ends it)", file=sys.stderr)
    if not args.no_browser and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        import webbrowser

        try:
            webbrowser.open(url)
        except Exception:  # noqa: BLE001 - no browser after all: the printed link is enough
            pass
    return 0
