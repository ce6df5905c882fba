"""`make bench` runs at a tiny size and writes its report with both servers in it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# serial: a benchmark, however tiny, measures the machine.
pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("matplotlib")
pytest.importorskip("psutil")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        timeout=110,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_quick_bench_writes_the_report(report: Path) -> None:
    text = (report / "benchmarks.md").read_text()
    assert "| product |" in text
    assert "| stock |" in text
    assert (report / "bench-p99.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_every_event_arrives_at_tiny_sizes(report: Path) -> None:
    runs = json.loads((report / "bench-results.json").read_text())["runs"]
    assert set(runs) == {"product", "stock"}
    for results in runs.values():
        assert results
        for r in results:
            assert r["held"] == r["clients"]
            assert r["expected"] > 0
            assert r["delivered"] == r["expected"]
            assert 0 < r["p99_ms"] < 5000


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_product_needs_no_redis_connection_per_client(report: Path) -> None:
    runs = json.loads((report / "bench-results.json").read_text())["runs"]
    most = max(runs["product"], key=lambda r: r["held"])
    assert most["redis_conns"] < most["held"]
    figures = json.loads((report / "bench-results.json").read_text())["figures"]
    names = {f["name"] for f in figures}
    assert {
        "recorder ingest",
        "producer CPU",
        "MQTT bridge throughput",
        "MQTT bridge CPU",
        "MQTT publish -> browser p50",
        "MQTT publish -> browser p99",
        "raw tier",
        "/api/series 5 y",
        "export",
    } <= names
    # Memory differences at tiny sizes can round to nothing; the rest are rates and times.
    assert all(f["value"] > 0 for f in figures if not f["name"].startswith("idle stream"))


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_an_idle_stream_holds_no_greenlet_or_request(report: Path) -> None:
    figures = json.loads((report / "bench-results.json").read_text())["figures"]
    heap = next(f for f in figures if f["name"] == "idle stream: Python heap (tracemalloc)")
    # A handler greenlet waiting with its request, environ and saved stack was
    # about 14 KB per client; handed to the hub, a client is a few small objects.
    assert 0 < heap["value"] < 4000


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_history_figures_keep_the_size_promises(report: Path) -> None:
    figures = json.loads((report / "bench-results.json").read_text())["figures"]
    value = {f["name"]: f["value"] for f in figures}
    assert value["raw tier"] <= 12  # bytes per sample, indexes included
    assert value["steady-state file"] <= 1.5  # GB, 10 sensors x 6 metrics at 1 Hz
