"""VIEW_TOKEN: read-only access beside ACCESS_TOKEN, set once from the URL into a cookie."""

from __future__ import annotations

import pytest

from shared.settings import SettingsError
from web import create_app, limiter

FULL = "full-token-0123456789abcdef"
VIEW = "view-token-0123456789abcdef"
SETTINGS_URL = "/api/sensors/pi/bme280/settings"
READS = ["/", "/display", "/api/sensors", "/api/readings", SETTINGS_URL]


@pytest.fixture
def app(make_settings):
    """Both tokens set, on a fresh database."""
    from shared import store

    settings = make_settings(ACCESS_TOKEN=FULL, VIEW_TOKEN=VIEW)
    conn = store.connect(settings.database_path)
    store.init_db(conn)
    conn.close()
    return create_app({"TESTING": True, "SETTINGS": settings})


def viewer(app):
    """A client that opened /display?token=<VIEW_TOKEN> once."""
    client = app.test_client()
    client.get(f"/display?token={VIEW}")
    return client


def test_token_in_url_sets_the_cookie_and_leaves_the_url(app) -> None:
    first = app.test_client().get(f"/display?dim=22:00-07:00&token={VIEW}")
    assert first.status_code == 303
    assert first.headers["Location"] == "display?dim=22%3A00-07%3A00"
    cookie = first.headers["Set-Cookie"]
    assert VIEW not in cookie
    assert "HttpOnly" in cookie
    dashboard = app.test_client().get(f"/?token={VIEW}")
    assert dashboard.headers["Location"] == "./"


@pytest.mark.parametrize("path", READS)
def test_a_view_session_reads(app, path: str) -> None:
    assert viewer(app).get(path).status_code == 200


def test_a_view_session_cannot_change_settings(app) -> None:
    answer = viewer(app).put(SETTINGS_URL, json={"name": "x"})
    assert answer.status_code == 403
    assert "full access token" in answer.get_json()["error"]


def test_the_dashboard_offers_no_settings_to_a_viewer(app) -> None:
    page = viewer(app).get("/").get_data(as_text=True)
    assert 'data-can-edit="false"' in page
    full = app.test_client()
    full.post("/login", data={"token": FULL})
    assert 'data-can-edit="true"' in full.get("/").get_data(as_text=True)
    assert full.put(SETTINGS_URL, json={"name": "Living room"}).status_code == 200


def test_view_bearer_reads_but_does_not_write(app) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {VIEW}"}
    assert client.get("/api/sensors", headers=headers).status_code == 200
    assert client.put(SETTINGS_URL, json={}, headers=headers).status_code == 403
    full = {"Authorization": f"Bearer {FULL}"}
    assert client.put(SETTINGS_URL, json={}, headers=full).status_code == 200


def test_the_full_token_in_the_url_is_not_taken(app) -> None:
    """Only the read-only token may travel in a URL (it ends up in logs and history)."""
    answer = app.test_client().get(f"/display?token={FULL}")
    assert answer.status_code == 401
    assert "That token is not right." in answer.get_data(as_text=True)


def test_wrong_tokens_in_urls_are_limited(app) -> None:
    client = app.test_client()
    tries = limiter.MAX_FAILURES + 1
    codes = [client.get("/display?token=guess").status_code for _ in range(tries)]
    assert codes[: limiter.MAX_FAILURES] == [401] * limiter.MAX_FAILURES
    assert codes[-1] == 429


def test_login_form_takes_the_view_token_too(app) -> None:
    client = app.test_client()
    assert client.post("/login", data={"token": VIEW}).status_code == 303
    assert client.get("/api/sensors").status_code == 200
    assert client.put(SETTINGS_URL, json={}).status_code == 403


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VIEW_TOKEN": VIEW}, "VIEW_TOKEN needs ACCESS_TOKEN"),
        ({"VIEW_TOKEN": FULL, "ACCESS_TOKEN": FULL}, "VIEW_TOKEN must differ"),
    ],
)
def test_unusable_view_tokens_are_refused(make_settings, env, message) -> None:
    with pytest.raises(SettingsError, match=message):
        create_app({"TESTING": True, "SETTINGS": make_settings(**env)})
