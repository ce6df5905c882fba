"""Who is asking: the client's address, the Host it asked for, where a form came from.

`X-Forwarded-For` is believed only from a configured proxy (TRUSTED_PROXIES),
read from the right so a client cannot prepend a made-up address. The Host
header must name this dashboard (TRUSTED_HOSTS, plus localhost and any IP
literal): a DNS-rebinding page has its own domain name in Host, so it is
refused even on a token-less LAN install (docs/security.md).
"""

from __future__ import annotations

import ipaddress
import logging

from flask import Flask, Response, current_app, jsonify, request

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Probes answer "up" and nothing else; a load balancer may use any Host.
_ANY_HOST = frozenset({"pages.healthz", "pages.readyz"})


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(
    remote: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]
) -> str:
    """The address of the client: the right-most hop not one of our proxies."""
    address = remote or "unknown"
    if not proxies or not _trusted(address, proxies):
        return address
    for hop in reversed((forwarded_for or "").split(",")):
        hop = hop.strip()
        if not hop:
            continue
        if not _trusted(hop, proxies):
            return hop[:64]
        address = hop
    return address


def request_client() -> str:
    """This request's client address, per TRUSTED_PROXIES."""
    proxies = current_app.config["SETTINGS"].trusted_proxies
    return client_address(request.remote_addr, request.headers.get("X-Forwarded-For"), proxies)


def host_name(host: str) -> str:
    """The name part of a Host header value, lower case, without port or brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str, trusted: tuple[str, ...]) -> bool:
    """True for localhost, IP literals, TRUSTED_HOSTS names (".example.com": subdomains)."""
    name = host_name(host)
    if not name:
        return False
    if name == "localhost" or "*" in trusted or name in trusted:
        return True
    if any(t.startswith(".") and name.endswith(t) for t in trusted):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def check_host() -> tuple[Response, int] | None:
    """before_request: 400 for a Host this dashboard does not answer to."""
    if request.endpoint in _ANY_HOST:
        return None
    host = request.headers.get("Host", "")
    if host_allowed(host, current_app.config["SETTINGS"].trusted_hosts):
        return None
    logger.warning("refused Host %r from %s (not in TRUSTED_HOSTS)", host[:100], request_client())
    return jsonify(error="this Host is not served here; add it to TRUSTED_HOSTS"), 400


def is_https() -> bool:
    """The browser talks https to us (directly, or to the proxy in front)."""
    # A forged header only makes the forger's own cookie https-only.
    return request.is_secure or request.headers.get("X-Forwarded-Proto", "") == "https"


def same_origin() -> bool:
    """False when a browser says this request comes from another site."""
    # Modern browsers say it outright; Origin is "null" on a same-origin form
    # post under `Referrer-Policy: no-referrer` (which every page here sends).
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in {"same-origin", "none"}
    origin = request.headers.get("Origin")
    if origin is not None:
        # Names only: a proxy's Host ($host) drops the port the browser used,
        # and a site is its scheme and name, not its port.
        _, sep, netloc = origin.partition("://")
        return bool(sep) and host_name(netloc) == host_name(request.host)
    return True  # neither header: not a browser (a script, curl), so not a forged form


def init_app(app: Flask) -> None:
    """Check the Host of every request first."""
    app.before_request(check_host)
