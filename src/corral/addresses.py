"""Where the TCP listener may be (config ``listen``): a loopback address without TLS, or
any address with ``tls: {cert, key}`` -- or without TLS when the config says
``insecure: true``, since tokens would cross the network in clear text. Kept apart from
the daemon's modules so that reading a config imports nothing heavy."""

from __future__ import annotations

import ipaddress

from .errors import ValidationError


def check_listen(listen: str, tls: bool, insecure: bool) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port), refusing a non-loopback address without TLS unless
    ``insecure``: tokens would cross the network in clear text."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError
    except ValueError:
        raise ValidationError("listen", listen, "expected HOST:PORT with a port from 1 to 65535, "
                                                "e.g. 127.0.0.1:8765") from None
    if not tls and not insecure and not _loopback(host):
        raise ValidationError("listen", listen, "expected a loopback address (127.0.0.1, ::1, localhost) without "
                                                "tls: {cert, key}; set insecure: true to serve tokens in clear "
                                                "text on a network anyway")
    return host, number


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
