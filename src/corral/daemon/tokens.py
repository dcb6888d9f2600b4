"""Bearer tokens for the TCP API: per user, with a scope and an expiry, stored hashed.

A token is ``crl_<id>_<secret>``: ``id`` (12 hex digits) finds its record, ``secret``
(32 random bytes, URL-safe base64) is checked against the record's SHA-256 with a
constant-time comparison. The secret is shown once, when the token is made; the daemon
keeps only its hash, in ``$CORRAL_HOME/tokens.json`` (mode 0600, the daemon's own file,
written atomically). A token acts as the user who made it, under exactly the socket's
rules (owner or admin), and further limited by its scope:

* ``read``: ``GET`` only (list, show, logs, nodes, usage, metrics, the dashboard);
* ``submit``: also submit, cancel, hold, release, update -- not the admin actions, not tokens;
* ``admin``: everything the user may do over the socket.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field

from ..errors import CorralError, NotFound, PermissionDenied, ValidationError

SCOPES = ("read", "submit", "admin")
PREFIX = "crl_"
_TOKEN = re.compile(r"^crl_([0-9a-f]{12})_([A-Za-z0-9_-]{43})\Z")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
MAX_TOKENS = 1000
#: A token made by `corral ui` for one browser session.
UI_SECONDS = 12 * 3600


class Unauthorized(CorralError):
    """No token, or one that is not valid (401)."""

    status = 401


@dataclass
class Token:
    id: str
    name: str
    user: str
    uid: int
    gid: int
    scope: str
    created: float
    expires: float | None
    digest: str = field(repr=False)

    def view(self) -> dict:
        """What ``token list`` shows (never the secret, nor its hash)."""
        out = asdict(self)
        del out["digest"]
        return out


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Tokens:
    """The daemon's tokens, in one file."""

    def __init__(self, path: str | None, clock=time.time):
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}
        if path is None:                      # in memory only (tests, an app without a home)
            return
        try:
            with open(path, encoding="utf-8") as f:
                for item in json.load(f):
                    self._tokens[item["id"]] = Token(**item)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorralError(f"cannot read the tokens in {path} ({exc.__class__.__name__}: {exc}); restore the "
                              "file, or remove it to revoke every token") from None

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump([asdict(t) for t in self._tokens.values()], f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def create(self, *, user: str, uid: int, gid: int, scope: str = "submit", name: str = "",
               seconds: float | None = None) -> tuple[Token, str]:
        """A new token; returns its record and the token text (shown once)."""
        if scope not in SCOPES:
            raise ValidationError("scope", scope, "expected one of: " + ", ".join(SCOPES))
        if name and not _NAME.match(name):
            raise ValidationError("name", name, "expected letters, digits, ., _ and -, at most 64, e.g. laptop")
        if seconds is not None and seconds <= 0:
            raise ValidationError("expires", seconds, "expected a duration greater than zero, e.g. 30d")
        with self._lock:
            self._drop_expired()
            if len(self._tokens) >= MAX_TOKENS:
                raise CorralError(f"too many tokens ({MAX_TOKENS}); revoke some with `corral token revoke`")
            ident = secrets.token_hex(6)
            secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
            now = self.clock()
            token = Token(ident, name or ident, user, uid, gid, scope, now,
                          now + seconds if seconds is not None else None, _digest(secret))
            self._tokens[ident] = token
            self._save()
        return token, f"{PREFIX}{ident}_{secret}"

    def check(self, text: str | None) -> Token:
        """The token's record, or :class:`Unauthorized` saying why not."""
        if not text:
            raise Unauthorized("no token: send `Authorization: Bearer TOKEN` (make one with `corral token create`)")
        m = _TOKEN.match(text)
        if m is None:
            raise Unauthorized("not a corral token (expected crl_ID_SECRET, as `corral token create` prints it)")
        token = self._tokens.get(m.group(1))
        if token is None or not hmac.compare_digest(token.digest, _digest(m.group(2))):
            raise Unauthorized("unknown or revoked token")
        if token.expires is not None and token.expires <= self.clock():
            raise Unauthorized(f"token {token.name} expired")
        return token

    def list(self, user: str | None = None) -> list[Token]:
        """Every token (``user`` None: an admin asks) or one user's, oldest first."""
        with self._lock:
            self._drop_expired()
            return sorted((t for t in self._tokens.values() if user is None or t.user == user),
                          key=lambda t: t.created)

    def revoke(self, ident_or_name: str, *, user: str | None) -> Token:
        """Revoke a token by id or name; ``user`` None: an admin, who may revoke any."""
        with self._lock:
            matches = [t for t in self._tokens.values() if ident_or_name in (t.id, t.name)]
            mine = [t for t in matches if user is None or t.user == user]
            if not mine:
                if matches:
                    raise PermissionDenied(f"permission denied: token {ident_or_name} belongs to "
                                           f"{matches[0].user} (you are {user})")
                raise NotFound(f"no such token: {ident_or_name}")
            if len(mine) > 1:
                raise ValidationError("token", ident_or_name, "expected one token: several have this name; "
                                                              "give its id")
            del self._tokens[mine[0].id]
            self._save()
            return mine[0]

    def _drop_expired(self) -> None:
        now = self.clock()
        gone = [k for k, t in self._tokens.items() if t.expires is not None and t.expires <= now]
        for k in gone:
            del self._tokens[k]
        if gone:
            self._save()
