"""Optional read access control: one shared token, as a login cookie or a Bearer header.

Off when ACCESS_TOKEN is empty. When set, every route except the health
checks, the login page and the static assets needs either the session cookie
(browsers: EventSource cannot send headers but does send same-origin cookies)
or `Authorization: Bearer <token>` (scripts, Prometheus). The cookie is a
signed, revocable session (web/sessions.py), never the token; failed tokens
are counted per client address (web/limiter.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging

import redis
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
)

from web import sessions
from web.limiter import SharedLimiter
from web.peers import is_https, request_client, same_origin
from web.services import services

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

COOKIE = "sensor_display_session"
SECURE_COOKIE = "__Host-" + COOKIE
COOKIE_MAX_AGE = sessions.MAX_AGE
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
EXTENSION = "sensor_display_auth"
REVOCATIONS = "sensor_display_sessions"


def _digest(text: str) -> bytes:
    # Fixed-length digests: compare_digest then leaks nothing about the length.
    return hashlib.sha256(text[:MAX_TOKEN_CHARS].encode("utf-8", "replace")).digest()


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return bool(token) and hmac.compare_digest(_digest(given), _digest(token))


def _cookie_name() -> str:
    # Over https the __Host- prefix makes the browser refuse a cookie that a
    # sibling subdomain or a plain-http page tried to set for us.
    return SECURE_COOKIE if is_https() else COOKIE


def current_session(token: str) -> sessions.Session | None:
    """This request's valid session (signature, age, not revoked), once per request."""
    if "session" not in g:
        found = sessions.verify(token, request.cookies.get(_cookie_name(), ""))
        if found is not None and not _revocations().valid(found):
            found = None
        g.session = found
    return g.session


def _has_session(token: str) -> bool:
    return current_session(token) is not None


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _client() -> str:
    return request_client()


def _limiter() -> SharedLimiter:
    return current_app.extensions[EXTENSION]


def _revocations() -> sessions.Revocations:
    return current_app.extensions[REVOCATIONS]


def require_access() -> Response | tuple[Response, int] | None:
    """before_request: let the request through, or answer 401/redirect/429."""
    token = services().settings.access_token
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
    token = services().settings.access_token
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
    token = services().settings.access_token
    if not token:
        return redirect("./")
    if request.method == "GET":
        return render_template("login.html", error=None)
    if not same_origin():
        logger.warning("refused a cross-site login from %s", _client())
        return render_template("login.html", error="Log in from this site's own form."), 403
    # Only this address's own failures count: a correct token from anyone
    # else is never refused because of a guesser.
    wait = _limiter().blocked_for(_client())
    if wait:
        return render_template("login.html", error="Too many attempts. Wait a few minutes."), 429
    if not token_matches(request.form.get("token", ""), token):
        _limiter().failed(_client())
        logger.warning("failed login from %s", _client())
        return render_template("login.html", error="That token is not right."), 401
    logger.info("login from %s", _client())
    response = redirect("./", code=303)
    response.set_cookie(
        _cookie_name(),
        sessions.issue(token),
        max_age=COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        secure=is_https(),
        samesite="Lax",
    )
    return response


@bp.post("/logout")
def logout() -> Response | tuple[Response, int]:
    """End this session for good; with `everywhere=1`, every session there is."""
    if not same_origin():
        logger.warning("refused a cross-site logout from %s", _client())
        return jsonify(error="log out from this site's own page"), 403
    token = services().settings.access_token
    session = current_session(token) if token else None
    try:
        if session is not None and request.form.get("everywhere") == "1":
            _revocations().revoke_all()
            logger.info("every session logged out, from %s", _client())
        elif session is not None:
            _revocations().revoke(session)
    except redis.RedisError as exc:
        logger.error("logout could not be recorded in Redis: %s", exc)
        return jsonify(error="Redis is unreachable; the session stays valid, try again"), 503
    response = redirect("login", code=303)
    for name, secure in ((COOKIE, False), (SECURE_COOKIE, True)):
        if name in request.cookies:
            response.delete_cookie(name, path="/", httponly=True, secure=secure, samesite="Lax")
    return response


def init_app(app: Flask) -> None:
    """Register the login routes and the access check (a no-op while the token is unset)."""
    # Only the login form takes a body, and it is one short field.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    svc = app.extensions["sensor_display"]
    channel = svc.settings.redis_channel
    app.extensions[EXTENSION] = SharedLimiter(svc.redis, channel)
    app.extensions[REVOCATIONS] = sessions.Revocations(svc.redis, channel)
    app.register_blueprint(bp)
    app.before_request(require_access)
    token = app.config["SETTINGS"].access_token
    if token and len(token) < MIN_TOKEN_CHARS:
        logger.warning("ACCESS_TOKEN is short; use at least %d random characters", MIN_TOKEN_CHARS)
