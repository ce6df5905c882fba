"""Optional access token (web/auth.py): off when unset; cookie or Bearer when set."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import time

import pytest

from web import auth, create_app, limiter, peers, sessions

TOKEN = "test-token-0123456789abcdef"
PROTECTED = ["/", "/stream", "/api/sensors", "/api/readings", "/api/openapi.json", "/metrics"]


@pytest.fixture
def locked(make_settings):
    """The app with ACCESS_TOKEN set."""
    return create_app({"TESTING": True, "SETTINGS": make_settings(ACCESS_TOKEN=TOKEN)})


def test_off_when_unset(client) -> None:
    """No token configured: the API answers and /login goes home."""
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/login").headers["Location"] == "./"


@pytest.mark.parametrize("path", PROTECTED)
def test_everything_but_probes_needs_the_token(locked, path: str) -> None:
    """401 with a JSON error (the page redirects to the login instead)."""
    response = locked.test_client().get(path)
    if path == "/":
        assert response.status_code == 302
        assert response.headers["Location"] == "login"
    else:
        assert response.status_code == 401
        assert "error" in response.get_json()
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/healthz", "/login", "/static/login.css"])
def test_probes_login_and_assets_are_open(locked, path: str) -> None:
    """Container health checks, the login form and its stylesheet need no token."""
    with locked.test_client().get(path) as response:
        assert response.status_code == 200


def test_bearer_token(locked) -> None:
    """Scripts send Authorization: Bearer; a wrong one is 401."""
    client = locked.test_client()
    ok = client.get("/api/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    bad = client.get("/api/openapi.json", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    basic = client.get("/api/openapi.json", headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401


def test_login_sets_a_safe_cookie_that_opens_everything(locked) -> None:
    """POST /login: HttpOnly, SameSite, derived from (not equal to) the token."""
    client = locked.test_client()
    response = client.post("/login", data={"token": TOKEN})
    assert response.status_code == 303
    assert response.headers["Location"] == "./"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http on a LAN
    assert TOKEN not in cookie
    assert sessions.verify({"full": TOKEN}, client.get_cookie(auth.COOKIE).value) is not None
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/").status_code == 200
    # EventSource sends same-origin cookies: the stream opens with the cookie alone.
    with client.get("/stream") as stream:
        assert stream.status_code == 200
        assert stream.mimetype == "text/event-stream"


def test_cookie_is_secure_behind_https(locked) -> None:
    """Behind NPM (X-Forwarded-Proto: https) the cookie is https-only, with the __Host- prefix."""
    client = locked.test_client()
    https = {"X-Forwarded-Proto": "https"}
    response = client.post("/login", data={"token": TOKEN}, headers=https)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-sensor_display_session=")
    assert "; Secure" in cookie
    assert "; Path=/" in cookie
    assert "Domain" not in cookie
    assert client.get("/api/openapi.json", headers=https).status_code == 200


def test_every_login_gets_its_own_cookie(locked) -> None:
    """Random ids: no two sessions share a cookie, unlike an HMAC of a constant."""
    values = set()
    for _ in range(3):
        client = locked.test_client()
        client.post("/login", data={"token": TOKEN})
        values.add(client.get_cookie(auth.COOKIE).value)
    assert len(values) == 3


def test_logout_ends_the_session_for_good(locked) -> None:
    """The cookie of a logged-out session opens nothing, even if replayed."""
    client = locked.test_client()
    client.post("/login", data={"token": TOKEN})
    value = client.get_cookie(auth.COOKIE).value
    assert client.post("/logout").status_code == 303
    replay = locked.test_client()
    replay.set_cookie(auth.COOKIE, value)
    assert replay.get("/api/sensors").status_code == 401


def test_log_out_everywhere(locked, make_settings) -> None:
    """everywhere=1 ends every session on every worker; a new login works again."""
    phone, laptop = locked.test_client(), locked.test_client()
    phone.post("/login", data={"token": TOKEN})
    laptop.post("/login", data={"token": TOKEN})
    # Another app on the same Redis: another worker or replica.
    other = create_app({"TESTING": True, "SETTINGS": make_settings(ACCESS_TOKEN=TOKEN)})
    elsewhere = other.test_client()
    elsewhere.set_cookie(auth.COOKIE, laptop.get_cookie(auth.COOKIE).value)
    assert elsewhere.get("/api/openapi.json").status_code == 200
    assert phone.post("/logout", data={"everywhere": "1"}).status_code == 303
    assert laptop.get("/api/sensors").status_code == 401
    assert elsewhere.get("/api/sensors").status_code == 401
    time.sleep(0.01)
    laptop.post("/login", data={"token": TOKEN})
    assert laptop.get("/api/openapi.json").status_code == 200


def test_log_out_everywhere_needs_a_session(locked) -> None:
    """Without a valid session nobody can log everyone else out."""
    user = locked.test_client()
    user.post("/login", data={"token": TOKEN})
    locked.test_client().post("/logout", data={"everywhere": "1"})
    assert user.get("/api/openapi.json").status_code == 200


@pytest.mark.parametrize(
    ("path", "origin"),
    [
        ("/login", "https://evil.example"),
        ("/login", "null"),
        ("/logout", "http://evil.example"),
    ],
)
def test_cross_site_login_and_logout_are_refused(locked, path: str, origin: str) -> None:
    """A form on another site can neither log the browser in nor out."""
    client = locked.test_client()
    client.post("/login", data={"token": TOKEN})
    response = client.post(path, data={"token": TOKEN}, headers={"Origin": origin})
    assert response.status_code == 403
    assert "Set-Cookie" not in response.headers
    assert client.get("/api/openapi.json").status_code == 200


def test_same_site_forms_work_with_origin(locked) -> None:
    """The login form of the page itself sends Origin: accepted (any port)."""
    client = locked.test_client()
    ok = client.post("/login", data={"token": TOKEN}, headers={"Origin": "http://localhost:9999"})
    assert ok.status_code == 303
    cross = client.post("/login", data={"token": TOKEN}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403


def test_rotating_the_token_logs_everyone_out(locked, make_settings) -> None:
    """A cookie for the old token opens nothing once the token changes."""
    client = locked.test_client()
    client.post("/login", data={"token": TOKEN})
    rotated = create_app(
        {"TESTING": True, "SETTINGS": make_settings(ACCESS_TOKEN=TOKEN + "-new")}
    ).test_client()
    rotated.set_cookie(auth.COOKIE, client.get_cookie(auth.COOKIE).value)
    assert rotated.get("/api/sensors").status_code == 401


_V1 = hmac.new(TOKEN.encode(), b"sensor-display session v1", hashlib.sha256).hexdigest()
_GOOD = sessions.issue(TOKEN)


@pytest.mark.parametrize(
    "cookie",
    [
        "",
        "x",
        TOKEN,
        _V1,  # the old constant cookie, the same for everyone
        _GOOD[:-1],
        _GOOD.replace("v2.full.", "v2.full.9", 1),  # issue time changed
        _GOOD.replace("v2.full.", "v2.view.", 1),  # level changed
        sessions.issue(TOKEN, now=time.time() - sessions.MAX_AGE - 60),  # expired
        sessions.issue(TOKEN + "x"),  # another token's key
        "é" * 64,
    ],
)
def test_forged_cookies_are_refused(locked, cookie: str) -> None:
    """Anything but an intact, unexpired signature by this token is refused."""
    client = locked.test_client()
    client.set_cookie(auth.COOKIE, cookie)
    assert client.get("/api/sensors").status_code == 401


def test_wrong_token_renders_the_form_again(locked) -> None:
    """A wrong token: 401, the form with a message, no cookie."""
    response = locked.test_client().post("/login", data={"token": "wrong"})
    assert response.status_code == 401
    assert b"not right" in response.data
    assert "Set-Cookie" not in response.headers


def test_failed_logins_are_rate_limited(locked) -> None:
    """After MAX_FAILURES wrong tokens that address waits (429, Retry-After)."""
    client = locked.test_client()
    for _ in range(limiter.MAX_FAILURES):
        assert client.post("/login", data={"token": "guess"}).status_code == 401
    assert client.post("/login", data={"token": "guess"}).status_code == 429
    bearer = client.get("/api/sensors", headers={"Authorization": "Bearer guess"})
    assert bearer.status_code == 429
    assert int(bearer.headers["Retry-After"]) > 0


def test_failed_bearer_tokens_count_too(locked) -> None:
    """Guessing through the header is limited like guessing through the form."""
    client = locked.test_client()
    for _ in range(limiter.MAX_FAILURES):
        client.get("/api/sensors", headers={"Authorization": "Bearer guess"})
    assert client.post("/login", data={"token": "guess"}).status_code == 429


@pytest.mark.parametrize("how", ["form", "bearer"])
def test_a_locked_out_address_still_gets_in_with_the_right_token(locked, how: str) -> None:
    """Failures never refuse a correct token; it clears them, so a typo is a 401 again."""
    client = locked.test_client()
    for _ in range(limiter.MAX_FAILURES):
        assert client.post("/login", data={"token": "guess"}).status_code == 401
    if how == "form":
        assert client.post("/login", data={"token": TOKEN}).status_code == 303
    else:
        bearer = client.get("/api/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200
    assert client.post("/login", data={"token": "typo"}).status_code == 401


def test_a_locked_out_address_is_checked_once_per_interval(make_settings) -> None:
    """Locked: one check per LOCKED_INTERVAL across workers; in between 429, unchecked."""
    settings = make_settings(ACCESS_TOKEN=TOKEN)
    apps = [create_app({"TESTING": True, "SETTINGS": settings}) for _ in range(2)]
    for app in apps:  # two workers sharing Redis, with a short interval
        bus = app.extensions["bus"]
        app.extensions[auth.EXTENSION] = limiter.SharedLimiter(bus.client, bus.channel, interval=1)
    one, two = (app.test_client() for app in apps)
    for _ in range(limiter.MAX_FAILURES):
        one.post("/login", data={"token": "guess"})
    checked = one.post("/login", data={"token": "guess"})
    assert checked.status_code == 429  # checked, wrong, locked
    assert 0 < int(checked.headers["Retry-After"]) <= 2
    # Within the interval the other worker does not check even the right token.
    early = two.get("/api/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert early.status_code == 429
    assert int(early.headers["Retry-After"]) <= 2
    time.sleep(1.1)
    assert two.post("/login", data={"token": TOKEN}).status_code == 303


@pytest.fixture
def behind_proxy(make_settings):
    """The app behind a proxy at 127.0.0.1 (TRUSTED_PROXIES)."""
    settings = make_settings(ACCESS_TOKEN=TOKEN, TRUSTED_PROXIES="127.0.0.1")
    return create_app({"TESTING": True, "SETTINGS": settings})


def test_one_guesser_never_locks_out_another_address(behind_proxy, make_settings) -> None:
    """Failures count per client address (from the proxy), in Redis for every worker."""
    guesser = {"X-Forwarded-For": "198.51.100.7"}
    client = behind_proxy.test_client()
    for _ in range(limiter.MAX_FAILURES + 8):
        client.post("/login", data={"token": "guess"}, headers=guesser)
    assert client.post("/login", data={"token": "guess"}, headers=guesser).status_code == 429
    # The same guesser on another worker (another app, same Redis) is blocked too.
    worker2 = create_app(
        {
            "TESTING": True,
            "SETTINGS": make_settings(ACCESS_TOKEN=TOKEN, TRUSTED_PROXIES="127.0.0.1"),
        }
    ).test_client()
    blocked = worker2.get("/api/sensors", headers={**guesser, "Authorization": f"Bearer {TOKEN}x"})
    assert blocked.status_code == 429
    other = {"X-Forwarded-For": "203.0.113.9"}
    assert client.post("/login", data={"token": TOKEN}, headers=other).status_code == 303
    bearer = worker2.get("/api/openapi.json", headers={**other, "Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200


def test_forwarded_for_is_ignored_from_untrusted_peers(locked) -> None:
    """Without TRUSTED_PROXIES a client cannot pick its address with the header."""
    client = locked.test_client()
    for i in range(limiter.MAX_FAILURES):
        headers = {"X-Forwarded-For": f"192.0.2.{i}"}
        client.post("/login", data={"token": "guess"}, headers=headers)
    fresh = {"X-Forwarded-For": "192.0.2.200"}
    assert client.post("/login", data={"token": "guess"}, headers=fresh).status_code == 429


@pytest.mark.parametrize(
    ("remote", "header", "expected"),
    [
        ("10.0.0.2", "1.2.3.4", "10.0.0.2"),  # not a proxy: header ignored
        ("127.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("127.0.0.1", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # a prepended lie is skipped
        ("127.0.0.1", "1.2.3.4, 127.0.0.1", "1.2.3.4"),  # two proxies
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "garbage", "garbage"),
    ],
)
def test_client_address(remote: str, header: str, expected: str) -> None:
    """The right-most hop that is not one of our proxies."""
    proxies = (ipaddress.ip_network("127.0.0.0/8"),)
    assert peers.client_address(remote, header, proxies) == expected


def test_limiter_window_and_memory_bound() -> None:
    """Failures expire after the window; the table never grows past MAX_TRACKED."""
    limits = limiter.FailedLogins(limit=2, window=10.0)
    limits.failed("a", now=0.0)
    limits.failed("a", now=1.0)
    assert limits.blocked_for("a", now=2.0) == pytest.approx(8.0)
    assert limits.blocked_for("a", now=10.5) == 0.0
    for i in range(limiter.MAX_TRACKED + 5):
        limits.failed(f"ip{i}", now=float(i))
    assert len(limits._seen) <= limiter.MAX_TRACKED


def test_limiter_in_memory_gate() -> None:
    """Without Redis: locked, one check per interval; a success clears the address."""
    limits = limiter.FailedLogins(limit=2, window=100.0, interval=5.0)
    assert limits.gate("a", now=0.0) == limiter.Gate()
    limits.failed("a", now=0.0)
    limits.failed("a", now=1.0)
    assert limits.gate("a", now=2.0) == limiter.Gate(locked=True, failures=True)
    assert limits.gate("a", now=3.0).wait == pytest.approx(4.0)
    assert limits.gate("a", now=7.5).wait == 0.0
    limits.succeeded("a")
    assert limits.gate("a", now=8.0) == limiter.Gate()


def test_the_token_is_never_logged(locked, caplog) -> None:
    """Logins, failures and Bearer rejections log the address, never a token."""
    client = locked.test_client()
    with caplog.at_level(logging.DEBUG):
        client.post("/login", data={"token": TOKEN + "x"})
        client.post("/login", data={"token": TOKEN})
        client.get("/api/sensors", headers={"Authorization": f"Bearer {TOKEN}y"})
    assert caplog.records
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


def test_login_page_obeys_the_csp(locked) -> None:
    """No inline script or style on the login page; it gets the same headers."""
    response = locked.test_client().get("/login")
    html = response.get_data(as_text=True)
    assert "<script" not in html
    assert "style=" not in html
    assert "<style" not in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_huge_login_bodies_are_refused(locked) -> None:
    """Only a short form is read: 413 past MAX_CONTENT_LENGTH."""
    response = locked.test_client().post("/login", data={"token": "x" * 100_000})
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("given", "expected"), [(TOKEN, True), (TOKEN + " ", False), ("", False), ("é😀\ud800", False)]
)
def test_token_matches(given: str, expected: bool) -> None:
    """Constant-time comparison that copes with any text."""
    assert auth.token_matches(given, TOKEN) is expected
    assert auth.token_matches(given, "") is False
