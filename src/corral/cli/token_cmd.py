"""``corral token create|list|revoke``: bearer tokens for the TCP API (and ``CORRAL_TOKEN``).

``create`` prints the token once (the daemon keeps only its hash); ``list`` shows the
caller's tokens (an admin's: everyone's) without secrets; ``revoke ID|NAME`` ends one."""

from __future__ import annotations

import json
import time

from ..client import Connection
from ..errors import CorralError
from . import format as fmt

ACTIONS = ("create", "list", "revoke")


def _when(ts: float | None) -> str:
    return "never" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def cmd_token(args) -> int:
    action = args.action
    if action not in ACTIONS:
        raise CorralError(f'invalid value for action: "{action}" (expected one of: {", ".join(ACTIONS)})')
    conn = Connection(args.home)
    if action == "create":
        if args.target:
            raise CorralError("`corral token create` takes no positional argument (give a name with --name)")
        body = {k: v for k, v in (("name", args.name), ("scope", args.scope), ("expires", args.expires)) if v}
        made = conn.request("POST", "/v1/tokens", body)
        if args.json:
            print(json.dumps(made))
        else:
            print(made["token"])
            import sys

            print(f"token {made['name']} ({made['id']}) for {made['user']}, scope {made['scope']}, expires "
                  f"{_when(made['expires'])}: shown this once; use it as CORRAL_TOKEN or `Authorization: Bearer`",
                  file=sys.stderr)
        return 0
    if action == "list":
        tokens = conn.request("GET", "/v1/tokens")["tokens"]
        if args.json:
            print(json.dumps({"tokens": tokens}))
            return 0
        rows = [[t["id"], t["name"], t["user"], t["scope"], _when(t["created"]), _when(t["expires"])] for t in tokens]
        print(fmt.table(["ID", "NAME", "USER", "SCOPE", "CREATED", "EXPIRES"], rows) if rows else "no tokens")
        return 0
    if len(args.target) != 1:
        raise CorralError("`corral token revoke` takes one token: its id or name (see `corral token list`)")
    gone = conn.request("DELETE", f"/v1/tokens/{_quote(args.target[0])}")
    print(json.dumps(gone) if args.json else f"revoked token {gone['name']} ({gone['id']}) of {gone['user']}")
    return 0


def _quote(text: str) -> str:
    from ..client import urlencode

    return urlencode({"": text})[1:]
