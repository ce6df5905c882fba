"""Optional read access control: one shared token, as a login cookie or a Bearer header.

Off when ACCESS_TOKEN is empty. When set, every route except the health
checks, the login page and the static assets needs either the session cookie
(browsers: EventSource cannot send headers but does send same-origin cookies)
or `Authorization: Bearer <token>` (scripts, Prometheus). The cookie holds an
HMAC derived from the token, never the token, so rotating the token logs
everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
)

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

COOKIE = "sensor_display_session"
COOKIE_MAX_AGE = 30 * 86400
# Routes anyone may reach: probes, the login itself, and code (no data) under /static.
# /api/ingest checks its own token (INGEST_TOKEN).
PUBLIC_ENDPOINTS = frozenset(
    {
        "pages.healthz",
        "pages.readyz",
        "auth.login",
        "auth.logout",
        "static",
        "ingest.ingest",
        # The installable app's manifest and service worker: code and icons, no data.
        "pwa.manifest",
        "pwa.service_worker",
    }
)
# Pages a person opens: without a session they go to the login form, not a 401.
PAGES = frozenset({"pages.index", "pages.display"})
MAX_TOKEN_CHARS = 1024
MIN_TOKEN_CHARS = 16
# Failed attempts per client address before it must wait; in memory, per worker.
MAX_FAILURES = 10
FAILURE_WINDOW = 300.0
MAX_TRACKED = 10_000
_SESSION_MESSAGE = b"sensor-display session v1"
EXTENSION = "sensor_display_auth"


@dataclass
class FailedLogins:
    """A sliding window of failed attempts per client address, bounded in memory."""

    limit: int = MAX_FAILURES
    window: float = FAILURE_WINDOW
    _seen: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def blocked_for(self, who: str, now: float | None = None) -> float:
        """Seconds `who` must wait before trying again; 0 if it may try now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._seen.get(who)
            if not times:
                return 0.0
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) < self.limit:
                return 0.0
            return times[0] + self.window - now

    def failed(self, who: str, now: float | None = None) -> None:
        """Record one failed attempt by `who`."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if who not in self._seen and len(self._seen) >= MAX_TRACKED:
                # Forget the quietest address rather than grow without bound.
                self._seen.pop(min(self._seen, key=lambda k: self._seen[k][-1]))
            self._seen.setdefault(who, deque(maxlen=self.limit)).append(now)

    def clear(self, who: str) -> None:
        """Forget `who` after a successful login."""
        with self._lock:
            self._seen.pop(who, None)


def _digest(text: str) -> bytes:
    # Fixed-length digests: compare_digest then leaks nothing about the length.
    return hashlib.sha256(text[:MAX_TOKEN_CHARS].encode("utf-8", "replace")).digest()


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return bool(token) and hmac.compare_digest(_digest(given), _digest(token))


def session_value(token: str) -> str:
    """The cookie value for `token`: an HMAC, so the cookie never reveals the token."""
    return hmac.new(token.encode(), _SESSION_MESSAGE, hashlib.sha256).hexdigest()


def _has_session(token: str) -> bool:
    cookie = request.cookies.get(COOKIE, "")[:128]
    return hmac.compare_digest(cookie.encode("ascii", "replace"), session_value(token).encode())


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _client() -> str:
    # Behind NPM this is the proxy's address, so the limit is shared by all
    # internet clients: a slowdown for guessing, never a lock on valid cookies.
    return request.remote_addr or "unknown"


def _limiter() -> FailedLogins:
    return current_app.extensions[EXTENSION]


def require_access() -> Response | tuple[Response, int] | None:
    """before_request: let the request through, or answer 401/redirect/429."""
    token = current_app.config["SETTINGS"].access_token
    if not token or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if _has_session(token):
        return None
    given = _bearer()
    if given is not None:
        return _check_bearer(given, token)
    if request.endpoint in PAGES:
        return redirect("login")  # relative: works under a path prefix too
    return _unauthorized("log in at /login or send Authorization: Bearer <token>")


def can_write() -> bool:
    """Whether this request may change settings: access is open, or it holds the full token."""
    token = current_app.config["SETTINGS"].access_token
    if not token or _has_session(token):
        return True
    given = _bearer()
    return given is not None and token_matches(given, token)


def _check_bearer(given: str, token: str) -> tuple[Response, int] | None:
    wait = _limiter().blocked_for(_client())
    if wait:
        return _too_many(wait)
    if token_matches(given, token):
        return None
    _limiter().failed(_client())
    logger.warning("rejected a Bearer token from %s", _client())
    return _unauthorized("the Bearer token is not valid")


def _unauthorized(message: str) -> tuple[Response, int]:
    response = jsonify(error=message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="sensor-display"'
    return response, 401


def _too_many(wait: float) -> tuple[Response, int]:
    response = jsonify(error="too many failed attempts; try again later")
    response.headers["Retry-After"] = str(int(wait) + 1)
    return response, 429


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    """The login form; a correct token sets the session cookie and goes to the dashboard."""
    token = current_app.config["SETTINGS"].access_token
    if not token:
        return redirect("./")
    if request.method == "GET":
        return render_template("login.html", error=None)
    wait = _limiter().blocked_for(_client())
    if wait:
        return render_template("login.html", error="Too many attempts. Wait a few minutes."), 429
    if not token_matches(request.form.get("token", ""), token):
        _limiter().failed(_client())
        logger.warning("failed login from %s", _client())
        return render_template("login.html", error="That token is not right."), 401
    _limiter().clear(_client())
    logger.info("login from %s", _client())
    response = redirect("./", code=303)
    response.set_cookie(
        COOKIE,
        session_value(token),
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        secure=_is_https(),
        samesite="Lax",
    )
    return response


@bp.post("/logout")
def logout() -> Response:
    """Forget the session cookie."""
    response = redirect("login", code=303)
    response.delete_cookie(COOKIE, httponly=True, secure=_is_https(), samesite="Lax")
    return response


def _is_https() -> bool:
    # Behind NPM the app sees http; trusting the header here is harmless: a
    # forged one only makes the forger's own cookie https-only.
    return request.is_secure or request.headers.get("X-Forwarded-Proto", "") == "https"


def init_app(app: Flask) -> None:
    """Register the login routes and the access check (a no-op while the token is unset)."""
    # Only the login form takes a body, and it is one short field.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    app.extensions[EXTENSION] = FailedLogins()
    app.register_blueprint(bp)
    app.before_request(require_access)
    token = app.config["SETTINGS"].access_token
    if token and len(token) < MIN_TOKEN_CHARS:
        logger.warning("ACCESS_TOKEN is short; use at least %d random characters", MIN_TOKEN_CHARS)
