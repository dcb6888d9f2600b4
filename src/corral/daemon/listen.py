"""The opt-in TCP listener (config ``listen: HOST:PORT``, ``tls: {cert, key}``,
``insecure``): the same API as the Unix socket, behind :class:`~.gateway.Gateway`
(bearer tokens, scopes, a rate limit), served by a second uvicorn server in the
daemon's event loop. The Unix socket's server owns the signals; this one stops with it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from ..addresses import check_listen
from .gateway import Gateway

log = logging.getLogger("corral.daemon")


def tcp_server(config: Any, app: Any, tokens: Any, *, max_connections: int, max_head: int) -> Any:
    """``(server, socket)`` for ``config.listen`` (None when the config has none). The
    socket is bound here, so an address in use stops the start with one line."""
    import socket

    import uvicorn

    from ..errors import CorralError

    if not getattr(config, "listen", None):
        return None
    tls = bool(config.tls_cert)
    host, port = check_listen(config.listen, tls=tls, insecure=config.insecure)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        raise CorralError(f"cannot listen on {config.listen}: {exc.strerror or exc}") from None

    class Quiet(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # the socket's server handles SIGTERM for both
            yield

    uconfig = uvicorn.Config(Gateway(app, tokens, rate=config.rate_limit, burst=max(int(config.rate_limit * 4), 1)),
                             host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                             proxy_headers=False, forwarded_allow_ips="", server_header=False,
                             timeout_keep_alive=5, limit_concurrency=max_connections,
                             h11_max_incomplete_event_size=max_head,
                             ssl_certfile=config.tls_cert or None, ssl_keyfile=config.tls_key or None)
    log.info("listening on %s://%s:%d (bearer tokens%s)", "https" if tls else "http", host, port,
             "" if tls or not config.insecure else "; INSECURE: no TLS")
    return Quiet(uconfig), sock
