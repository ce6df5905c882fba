"""web/peers.py: the Host a request names, and no-store on data (with a real app)."""

from __future__ import annotations

import pytest

from web import create_app, peers


@pytest.mark.parametrize(
    ("host", "trusted", "allowed"),
    [
        ("localhost:9999", (), True),
        ("127.0.0.1:9999", (), True),
        ("192.168.1.20:9999", (), True),  # a LAN install opened by address
        ("[::1]:9999", (), True),
        ("attacker.example", (), False),  # DNS rebinding: the attacker's own name
        ("attacker.example:9999", (), False),
        ("dash.example.com", ("dash.example.com",), True),
        ("DASH.example.com:443", ("dash.example.com",), True),
        ("pi.home.lan", (".home.lan",), True),
        ("evilhome.lan", (".home.lan",), False),
        ("anything.example", ("*",), True),
        ("", (), False),
    ],
)
def test_host_allowed(host: str, trusted: tuple[str, ...], allowed: bool) -> None:
    """localhost, IP literals and TRUSTED_HOSTS names; nothing else."""
    assert peers.host_allowed(host, trusted) is allowed


def test_foreign_host_is_refused_but_probes_answer(app) -> None:
    """A rebinding page gets 400 on data routes; /healthz answers any Host."""
    client = app.test_client()
    bad = {"Host": "rebind.attacker.example"}
    response = client.get("/api/sensors", headers=bad)
    assert response.status_code == 400
    assert "TRUSTED_HOSTS" in response.get_json()["error"]
    assert client.get("/", headers=bad).status_code == 400
    assert client.get("/healthz", headers=bad).status_code == 200
    assert client.get("/api/sensors", headers={"Host": "192.168.1.5:9999"}).status_code == 200


def test_trusted_hosts_setting(make_settings) -> None:
    """TRUSTED_HOSTS adds the proxy's domain."""
    settings = make_settings(TRUSTED_HOSTS="dash.example.com")
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    assert client.get("/healthz", headers={"Host": "dash.example.com"}).status_code == 200
    assert client.get("/login", headers={"Host": "dash.example.com"}).status_code != 400
    assert client.get("/login", headers={"Host": "other.example.com"}).status_code == 400


@pytest.mark.parametrize("path", ["/api/sensors", "/api/readings", "/api/export.csv", "/metrics"])
def test_data_is_never_cached(client, path: str) -> None:
    """API, CSV and metrics responses carry Cache-Control: no-store."""
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_hsts_only_over_https(client) -> None:
    """Strict-Transport-Security when the browser came over https (via the proxy)."""
    assert "Strict-Transport-Security" not in client.get("/healthz").headers
    https = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert https.headers["Strict-Transport-Security"].startswith("max-age=")
