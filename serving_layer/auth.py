"""Who may read the serving layer: loopback only by default; beyond loopback only with a token, then always asked.

The API wants ``Authorization: Bearer <token>``; the dashboard (a browser UI) asks for HTTP Basic credentials
with the token as password (any user name), or takes the same Bearer header. The token is
``RETAIL_SERVING_AUTH_TOKEN`` (a secret: never printed). Put TLS in front (a reverse proxy) when the network is
not trusted: this is a shared secret, not a user directory.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress

from contracts.errors import ConfigError
from contracts.settings import Settings

__all__ = ["is_loopback", "check_exposure", "authorized", "host_allowed"]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; a name or wildcard address (0.0.0.0, ::) is not loopback."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str | None) -> bool:
    """Whether a request's ``Host`` header names a loopback host (``localhost``, 127.0.0.0/8, ``[::1]``; any port).

    A service without a token listens on loopback only, and answers only requests addressed to loopback: a web
    page that re-binds its own DNS name to 127.0.0.1 (DNS rebinding) makes the browser send that name as Host,
    and is refused. No Host header at all (HTTP/1.0, no browser sends that) is let through.
    """
    if host_header is None:
        return True
    host = host_header.strip()
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else ""
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return bool(name) and is_loopback(name)


def check_exposure(settings: Settings, what: str) -> str | None:
    """The token to require, or None on loopback without one; raises ConfigError when ``what`` would listen beyond
    loopback without a token."""
    token = settings.serving_auth_token.get_secret_value() if settings.serving_auth_token else None
    if not is_loopback(settings.bind_host) and not token:
        raise ConfigError(
            f"refusing to serve the {what} on {settings.bind_host} (beyond loopback) without authentication: "
            "set RETAIL_SERVING_AUTH_TOKEN, or keep RETAIL_BIND_HOST=127.0.0.1"
        )
    return token or None


def authorized(header: str | None, token: str, *, basic: bool = False) -> bool:
    """Whether an ``Authorization`` header carries ``token``: ``Bearer <token>``, or with ``basic`` also HTTP Basic
    credentials whose password is the token (constant-time comparison)."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return hmac.compare_digest(value.strip().encode("utf-8", "surrogatepass"), token.encode())
    if basic and scheme == "basic":
        try:
            # a header with non-ASCII characters (a WSGI header is Latin-1 text) makes b64decode raise ValueError
            _user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
            return False
        return hmac.compare_digest(password.encode(), token.encode())
    return False
