"""Optional access token (web/auth.py): off when unset; cookie or Bearer when set."""

from __future__ import annotations

import logging

import pytest

from web import auth, create_app

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
    assert auth.session_value(TOKEN) in cookie
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/").status_code == 200
    # EventSource sends same-origin cookies: the stream opens with the cookie alone.
    with client.get("/stream") as stream:
        assert stream.status_code == 200
        assert stream.mimetype == "text/event-stream"


def test_cookie_is_secure_behind_https(locked) -> None:
    """Behind NPM (X-Forwarded-Proto: https) the cookie is https-only."""
    response = locked.test_client().post(
        "/login", data={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"}
    )
    assert "; Secure" in response.headers["Set-Cookie"]


def test_rotating_the_token_logs_everyone_out(locked, make_settings) -> None:
    """A cookie for the old token opens nothing once the token changes."""
    client = locked.test_client()
    client.post("/login", data={"token": TOKEN})
    rotated = create_app(
        {"TESTING": True, "SETTINGS": make_settings(ACCESS_TOKEN=TOKEN + "-new")}
    ).test_client()
    rotated.set_cookie(auth.COOKIE, auth.session_value(TOKEN))
    assert rotated.get("/api/sensors").status_code == 401


@pytest.mark.parametrize("cookie", ["", "x", TOKEN, auth.session_value(TOKEN)[:-1], "é" * 64])
def test_forged_cookies_are_refused(locked, cookie: str) -> None:
    """Anything but the exact HMAC (the raw token included) is refused."""
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
    """After MAX_FAILURES wrong tokens even the right one waits (429, Retry-After)."""
    client = locked.test_client()
    for _ in range(auth.MAX_FAILURES):
        assert client.post("/login", data={"token": "guess"}).status_code == 401
    assert client.post("/login", data={"token": TOKEN}).status_code == 429
    bearer = client.get("/api/sensors", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 429
    assert int(bearer.headers["Retry-After"]) > 0


def test_failed_bearer_tokens_count_too(locked) -> None:
    """Guessing through the header is limited like guessing through the form."""
    client = locked.test_client()
    for _ in range(auth.MAX_FAILURES):
        client.get("/api/sensors", headers={"Authorization": "Bearer guess"})
    assert client.post("/login", data={"token": TOKEN}).status_code == 429


def test_limiter_window_and_memory_bound() -> None:
    """Failures expire after the window; the table never grows past MAX_TRACKED."""
    limiter = auth.FailedLogins(limit=2, window=10.0)
    limiter.failed("a", now=0.0)
    limiter.failed("a", now=1.0)
    assert limiter.blocked_for("a", now=2.0) == pytest.approx(8.0)
    assert limiter.blocked_for("a", now=10.5) == 0.0
    for i in range(auth.MAX_TRACKED + 5):
        limiter.failed(f"ip{i}", now=float(i))
    assert len(limiter._seen) <= auth.MAX_TRACKED


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
