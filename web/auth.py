"""Optional read access control: one shared token, as a login cookie or a Bearer header.

Off when ACCESS_TOKEN is empty. When set, every route except the health
checks, the login page and the static assets needs either the session cookie
(browsers: EventSource cannot send headers but does send same-origin cookies)
or `Authorization: Bearer <token>` (scripts, Prometheus). The cookie is a
signed, revocable session (web/sessions.py), never the token; failed tokens
are counted per client address in Redis (web/limiter.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from urllib.parse import urlencode

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

from shared.settings import SettingsError
from web import limiter, sessions
from web.limiter import Gate, SharedLimiter
from web.peers import is_https, request_client, same_origin

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
# Access levels: the full token (ACCESS_TOKEN) or the read-only one (VIEW_TOKEN).
FULL = "full"
VIEW = "view"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXTENSION = "sensor_display_auth"
# The login form as an answer: (page, status) or (page, status, headers).
Page = tuple[str, int] | tuple[str, int, dict[str, str]]
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


def current_session() -> sessions.Session | None:
    """This request's valid session (signature, age, not revoked), looked up once."""
    if "session" not in g:
        settings = current_app.config["SETTINGS"]
        tokens = {FULL: settings.access_token, VIEW: settings.view_token}
        found = sessions.verify(tokens, request.cookies.get(_cookie_name(), ""))
        if found is not None and not _revocations().valid(found):
            found = None
        g.session = found
    return g.session


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _client() -> str:
    return request_client()


def _limiter() -> SharedLimiter:
    return current_app.extensions[EXTENSION]


def _revocations() -> sessions.Revocations:
    return current_app.extensions[REVOCATIONS]


def require_access() -> Response | tuple[Response, int] | str | None:
    """before_request: let the request through, or answer 401/403/redirect/429."""
    settings = current_app.config["SETTINGS"]
    if not settings.access_token or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if request.endpoint in PAGES and "token" in request.args:
        return _token_in_url(settings.view_token)
    level = _session_level()
    if level is None:
        given = _bearer()
        if given is None:
            if request.endpoint in PAGES:
                return redirect("login")  # relative: works under a path prefix too
            return _unauthorized("log in at /login or send Authorization: Bearer <token>")
        level = _bearer_level(given)
        if not isinstance(level, str):
            return level
    if level == VIEW and request.method not in READ_METHODS:
        return jsonify(error="read-only: this needs the full access token, not a view token"), 403
    return None


def _session_level() -> str | None:
    """FULL or VIEW for a valid session cookie, else None."""
    session = current_session()
    return None if session is None else session.level


def can_write() -> bool:
    """Whether this request may change settings: access is open, or it holds the full token."""
    token = current_app.config["SETTINGS"].access_token
    if not token or _session_level() == FULL:
        return True
    given = _bearer()
    return given is not None and token_matches(given, token)


def _level_of(given: str, *, view_only: bool = False) -> str | None:
    """FULL or VIEW for the token it matches, else None."""
    settings = current_app.config["SETTINGS"]
    if not view_only and token_matches(given, settings.access_token):
        return FULL
    if token_matches(given, settings.view_token):
        return VIEW
    return None


def _check_token(given: str, what: str, *, view_only: bool = False) -> str | Gate:
    """The level `given` opens, else the address's gate (web/limiter.py, `check`)."""
    return limiter.check(_limiter(), _client(), lambda: _level_of(given, view_only=view_only), what)


def _bearer_level(given: str) -> str | tuple[Response, int]:
    """FULL or VIEW for a valid Bearer token, else the 401 or 429 answer."""
    checked = _check_token(given, "rejected a Bearer token")
    if isinstance(checked, str):
        return checked
    if checked.wait:
        return _too_many(checked.wait)
    return _unauthorized("the Bearer token is not valid")


def _token_in_url(view_token: str) -> Response | Page:
    """A kiosk's first visit, `?token=<VIEW_TOKEN>`: set the view cookie, drop it from the URL."""
    checked = _check_token(request.args.get("token", ""), "wrong token in the URL", view_only=True)
    if not isinstance(checked, str):
        return _form_refusal(checked)
    rest = {k: v for k, v in request.args.items(multi=True) if k != "token"}
    # Relative, so it works under a path prefix: "display?dim=...", or "./" for the dashboard.
    here = request.path.rsplit("/", 1)[-1] or "./"
    response = redirect(f"{here}?{urlencode(rest)}" if rest else here, code=303)
    _set_session(response, sessions.issue(view_token, VIEW))
    logger.info("view session from %s", _client())
    return response


def _form_refusal(gate: Gate) -> Page:
    """The login form again: 429 (with Retry-After) while the address must wait, else 401."""
    if not gate.wait:
        return render_template("login.html", error="That token is not right."), 401
    seconds = int(gate.wait) + 1
    page = render_template(
        "login.html", error=f"Too many failed attempts. Try again in {seconds} s."
    )
    return page, 429, {"Retry-After": str(seconds)}


def _unauthorized(message: str) -> tuple[Response, int]:
    response = jsonify(error=message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="sensor-display"'
    return response, 401


def _too_many(wait: float) -> tuple[Response, int]:
    response = jsonify(error="too many failed attempts; try again later")
    response.headers["Retry-After"] = str(int(wait) + 1)
    return response, 429


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | Page | str:
    """The login form; a correct token sets the session cookie and goes to the dashboard."""
    token = current_app.config["SETTINGS"].access_token
    if not token:
        return redirect("./")
    if request.method == "GET":
        return render_template("login.html", error=None)
    if not same_origin():
        logger.warning("refused a cross-site login from %s", _client())
        return render_template("login.html", error="Log in from this site's own form."), 403
    # Only this address's own failures count, and a correct token is never
    # refused because of them: a locked address is only checked less often.
    checked = _check_token(request.form.get("token", ""), "failed login")
    if not isinstance(checked, str):
        return _form_refusal(checked)
    settings = current_app.config["SETTINGS"]
    cookie = sessions.issue(
        settings.access_token if checked == FULL else settings.view_token, checked
    )
    logger.info("login from %s", _client())
    response = redirect("./", code=303)
    _set_session(response, cookie)
    return response


def _set_session(response: Response, value: str) -> None:
    response.set_cookie(
        _cookie_name(),
        value,
        max_age=COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        secure=is_https(),
        samesite="Lax",
    )


@bp.post("/logout")
def logout() -> Response | tuple[Response, int]:
    """End this session for good; with `everywhere=1` (full access), every session there is."""
    if not same_origin():
        logger.warning("refused a cross-site logout from %s", _client())
        return jsonify(error="log out from this site's own page"), 403
    session = current_session() if current_app.config["SETTINGS"].access_token else None
    try:
        if session is not None and session.level == FULL and request.form.get("everywhere") == "1":
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
    bus = app.extensions["bus"]
    app.extensions[EXTENSION] = SharedLimiter(bus.client, bus.channel)
    app.extensions[REVOCATIONS] = sessions.Revocations(bus.client, bus.channel)
    app.register_blueprint(bp)
    app.before_request(require_access)
    settings = app.config["SETTINGS"]
    check_tokens(settings.access_token, settings.view_token)
    for name, token in (
        ("ACCESS_TOKEN", settings.access_token),
        ("VIEW_TOKEN", settings.view_token),
    ):
        if token and len(token) < MIN_TOKEN_CHARS:
            logger.warning("%s is short; use at least %d random characters", name, MIN_TOKEN_CHARS)


def check_tokens(access_token: str, view_token: str) -> None:
    """Refuse a VIEW_TOKEN that cannot work: without ACCESS_TOKEN, or equal to it."""
    if view_token and not access_token:
        raise SettingsError(
            "VIEW_TOKEN needs ACCESS_TOKEN: with no full token access is open and nobody could"
            " change settings; set both, or neither"
        )
    if view_token and token_matches(view_token, access_token):
        raise SettingsError("VIEW_TOKEN must differ from ACCESS_TOKEN")
