"""`POST /api/ingest`: every status it answers, and retries stored once."""

from __future__ import annotations

import json
import time

import pytest
import redis

from devtools.redis_server import free_port
from devtools.stack import ROOT
from web import create_app
from web.ingest import MAX_BODY_BYTES, MAX_READINGS, RATE_LIMIT, RATE_WINDOW

TOKEN = "ingest-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def reading(seq: int | None = 1, source: str = "esp32", **values: float) -> dict:
    out = {"source": source, "sensor": "sht31", "ts": time.time(), "values": values or {"t_c": 1.0}}
    if seq is not None:
        out["seq"] = seq
    return out


@pytest.fixture
def ingest_client(make_settings):
    app = create_app({"TESTING": True, "SETTINGS": make_settings(INGEST_TOKEN=TOKEN)})
    return app.test_client()


def stream(redis_client: redis.Redis) -> list[dict]:
    return [json.loads(f[b"r"]) for _, f in redis_client.xrange("readings:stream")]


def test_one_reading_is_accepted_and_published(ingest_client, redis_client) -> None:
    response = ingest_client.post("/api/ingest", json=reading(7, temperature_c=21.5), headers=AUTH)
    assert response.status_code == 202
    assert response.get_json() == {"accepted": 1}
    [published] = stream(redis_client)
    assert published["values"] == {"temperature_c": 21.5}
    assert published["seq"] == 7


def test_an_array_without_seq(ingest_client, redis_client) -> None:
    body = [reading(None, source=f"dev{i % 3}") for i in range(MAX_READINGS)]
    response = ingest_client.post("/api/ingest", json=body, headers=AUTH)
    assert response.status_code == 202
    assert response.get_json() == {"accepted": MAX_READINGS}
    assert len(stream(redis_client)) == MAX_READINGS


def test_a_reading_posted_twice_is_stored_once(ingest_client, redis_client) -> None:
    body = [reading(1), reading(2)]
    for _ in range(2):  # the device did not see the first 202 and retries
        assert ingest_client.post("/api/ingest", json=body, headers=AUTH).status_code == 202
    assert [r["seq"] for r in stream(redis_client)] == [1, 2]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "body is not JSON"),
        (b'{"source": "a", "sensor": "b", "ts": NaN, "values": {"t_c": 1}}', "NaN"),
        (b"[]", "array of 1 to 1000"),
        (json.dumps([reading()] * (MAX_READINGS + 1)).encode(), "array of 1 to 1000"),
        (json.dumps([reading(), {**reading(), "values": {}}]).encode(), "readings[1]: values"),
        (json.dumps({**reading(), "extra": 1}).encode(), "reading: unknown key 'extra'"),
        (json.dumps({**reading(), "source": "a b"}).encode(), "reading: source must be"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not JSON"),
        (
            json.dumps([reading(), {**reading(), "ts": time.time() + 2 * 86400}]).encode(),
            "readings[1]: ts is more than 24 h in the future",
        ),
    ],
    # Named, not shown: a body holds time.time(), and ids must match across workers.
    ids=[
        "not-json",
        "nan",
        "empty-array",
        "too-many",
        "empty-values",
        "unknown-key",
        "bad-source",
        "deep-nesting",
        "future-ts",
    ],
)
def test_bad_bodies_are_400_naming_the_fault(ingest_client, redis_client, body, error) -> None:
    response = ingest_client.post(
        "/api/ingest", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error in response.get_json()["error"]
    assert stream(redis_client) == []  # nothing of a refused body is published


def test_a_seq_redis_refuses_is_400_saying_what_was_accepted(ingest_client, redis_client) -> None:
    assert ingest_client.post("/api/ingest", json=reading(1), headers=AUTH).status_code == 202
    body = [reading(2), reading(2**62), reading(4)]  # marks rule 8: a jump no clock explains
    response = ingest_client.post("/api/ingest", json=body, headers=AUTH)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error.startswith("readings[1]: ")
    assert error.endswith("; the 1 before it were accepted")
    assert [r["seq"] for r in stream(redis_client)] == [1, 2]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
)
def test_without_the_token_401(ingest_client, redis_client, headers) -> None:
    response = ingest_client.post("/api/ingest", json=reading(), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "error" in response.get_json()
    assert stream(redis_client) == []


def test_guessing_the_token_is_slowed_down(ingest_client) -> None:
    """Locked out: wrong tokens 429 (one checked per interval); the right one still works."""
    wrong = {"Authorization": "Bearer x"}
    for _ in range(10):
        ingest_client.post("/api/ingest", json=reading(), headers=wrong)
    response = ingest_client.post("/api/ingest", json=reading(), headers=wrong)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert ingest_client.post("/api/ingest", json=reading(), headers=wrong).status_code == 429


def test_a_locked_out_device_still_gets_in_with_the_right_token(ingest_client) -> None:
    for _ in range(10):
        ingest_client.post("/api/ingest", json=reading(), headers={"Authorization": "Bearer x"})
    assert ingest_client.post("/api/ingest", json=reading(), headers=AUTH).status_code == 202


def test_off_without_a_token_404(client) -> None:
    response = client.post("/api/ingest", json=reading(), headers=AUTH)
    assert response.status_code == 404
    assert "INGEST_TOKEN" in response.get_json()["error"]


def test_a_body_over_the_cap_is_413(ingest_client, redis_client) -> None:
    body = json.dumps([reading()] * 20_000)  # far more than one request may carry
    assert len(body) > MAX_BODY_BYTES
    response = ingest_client.post(
        "/api/ingest", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "error" in response.get_json()
    assert stream(redis_client) == []


def test_rate_limit_per_source_429(ingest_client, redis_client) -> None:
    batch = [reading(None) for _ in range(MAX_READINGS)]
    for _ in range(RATE_LIMIT // MAX_READINGS):
        assert ingest_client.post("/api/ingest", json=batch, headers=AUTH).status_code == 202
    response = ingest_client.post("/api/ingest", json=batch[:1], headers=AUTH)
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 60
    # Another source has its own budget.
    other = ingest_client.post("/api/ingest", json=reading(source="esp32-2"), headers=AUTH)
    assert other.status_code == 202


def test_ingest_works_when_the_dashboard_has_an_access_token(make_settings, redis_client) -> None:
    settings = make_settings(INGEST_TOKEN=TOKEN, ACCESS_TOKEN="dashboard-token-0123456789")
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    assert client.post("/api/ingest", json=reading(), headers=AUTH).status_code == 202


def test_redis_down_is_503_so_the_device_retries(make_settings) -> None:
    settings = make_settings(INGEST_TOKEN=TOKEN, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    response = client.post("/api/ingest", json=reading(), headers=AUTH)
    assert response.status_code == 503
    assert "retry" in response.get_json()["error"]


def test_docs_state_the_limits_the_code_has() -> None:
    docs = (ROOT / "docs" / "mqtt.md").read_text()
    assert f"1 to {MAX_READINGS:,}" in docs
    assert f"over {MAX_BODY_BYTES // 2**20} MiB" in docs
    assert f"more than {RATE_LIMIT:,} readings from one source in a minute" in docs
    assert RATE_WINDOW == 60
