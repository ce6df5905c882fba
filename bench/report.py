"""The report: docs/benchmarks.md, the p99 plot, and a JSON of every figure."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from bench.fanout import LoadResult
from bench.offline import Figure

P99_LIMIT_MS = 250.0
PACKAGES = ("flask", "flask-sse", "gunicorn", "gevent", "redis", "hiredis")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def conditions(redis_version: str, workers: int, processes: int) -> list[str]:
    """The machine and software the figures were measured on."""
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in PACKAGES)
    return [
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; Linux {platform.release()}",
        f"Python {platform.python_version()}, Redis {redis_version}; {versions}",
        f"both servers: gunicorn, {workers} gevent workers, worker_connections 50,000,"
        " backlog 4,096, timeout 30 s, fd limit raised (the same `web.__main__.options`)",
        f"load client: {processes} processes, raw non-blocking sockets on epoll, HTTP/1.0;"
        " clients, servers and Redis share the same machine (loopback), so the client's"
        " CPU competes with the server's",
        "latency: the reading's `ts` (stamped just before PUBLISH) to the client's recv,"
        " same clock",
    ]


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def load_table(results: Iterable[LoadResult]) -> list[str]:
    """A markdown table of fan-out runs."""
    rows = [
        "| server | clients | msg/s | held | expected | delivered | lost | p50 ms | p95 ms"
        " | p99 ms | max ms | events late | deliveries/s | server CPU us/event"
        " | client CPU us/event | RSS KB/conn | Redis KB/conn | Redis conns"
        " | first byte p50/p99 ms | workers | load avg |",
        "|" + " --- |" * 21,
    ]
    for r in results:
        workers = f"{r.workers} (replaced)" if r.workers_replaced else str(r.workers)
        first = f"{_fmt(r.first_byte_p50_ms)} / {_fmt(r.first_byte_p99_ms)}"
        if r.first_byte_missed:
            first += f" ({r.first_byte_missed} none in 3 s)"
        rows.append(
            f"| {r.server} | {r.clients:,} | {r.rate:g} | {r.held:,} | {r.expected:,}"
            f" | {r.delivered:,} | {r.lost:,} | {_fmt(r.p50_ms)} | {_fmt(r.p95_ms)}"
            f" | {_fmt(r.p99_ms)} | {_fmt(r.max_ms)} | {r.late_events}/{r.sent}"
            f" | {_fmt(r.deliveries_per_s, 0)} | {_fmt(r.cpu_us_per_event)}"
            f" | {_fmt(r.client_us_per_event)} | {_fmt(r.rss_per_conn_kb)}"
            f" | {_fmt(r.redis_per_conn_kb)} | {r.redis_conns:,} | {first} | {workers}"
            f" | {_fmt(r.load_avg)} |"
        )
    return rows


def capacity(results: Iterable[LoadResult]) -> int:
    """The most clients held at 1 msg/s with p99 under the limit and nothing lost."""
    return max((r.clients for r in results if r.ok(P99_LIMIT_MS)), default=0)


def plot(capacity_runs: dict[str, list[LoadResult]], path: Path) -> None:
    """p99 latency against clients at 1 msg/s, one line per server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, runs in capacity_runs.items():
        pts = [(r.clients, r.p99_ms) for r in runs if r.p99_ms is not None]
        ax.plot([c for c, _ in pts], [p for _, p in pts], marker="o", label=name)
    ax.axhline(P99_LIMIT_MS, color="grey", linestyle="--", linewidth=1, label="250 ms")
    ax.set_xlabel("concurrent SSE clients (1 reading/s)")
    ax.set_ylabel("p99 delivery latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(path: Path, data: dict) -> None:
    """Every raw figure, for comparing runs."""
    path.write_text(json.dumps(data, indent=2, default=_plain) + "\n")


def _plain(obj: object) -> object:
    if isinstance(obj, LoadResult):
        return obj.as_dict()
    if isinstance(obj, Figure):
        return asdict(obj)
    raise TypeError(type(obj).__name__)


def _find(runs: list[LoadResult], clients: int, rate: float) -> LoadResult | None:
    return next((r for r in runs if r.clients == clients and r.rate == rate), None)


def _cpu_per_event(runs: list[LoadResult]) -> float | None:
    """Server CPU per delivered event over every run that delivered."""
    events = sum(r.delivered for r in runs)
    return sum(r.cpu_s for r in runs) / events * 1e6 if events else None


Row = tuple[str, str, str, str, str]


def summary(
    runs: dict[str, list[LoadResult]],
    caps: dict[str, list[LoadResult]],
    ttfb: dict[str, float | None],
) -> list[Row]:
    """(what, target, product, stock, product/stock) rows: the targets of issue 18."""
    prod, stock = runs.get("product", []), runs.get("stock", [])
    cap_p, cap_s = capacity(caps.get("product", [])), capacity(caps.get("stock", []))
    most_p = max(prod, key=lambda r: r.held, default=None)
    most_s = max(stock, key=lambda r: r.held, default=None)
    ten_p, ten_s = _find(prod, 10_000, 1.0), _find(stock, 10_000, 1.0)
    fifty_p, fifty_s = _find(prod, 5000, 50), _find(stock, 5000, 50)
    one_p = _cpu_per_event([r for r in prod if r.rate == 1.0])
    one_s = _cpu_per_event([r for r in stock if r.rate == 1.0])
    mem_p, mem_s = _idle_kb(most_p), _idle_kb(most_s)
    fb_p = most_p and most_p.first_byte_p99_ms
    fb_s = most_s and most_s.first_byte_p99_ms
    client_p = _client_per_event([r for r in prod if r.rate == 1.0])
    client_s = _client_per_event([r for r in stock if r.rate == 1.0])
    no_byte = "none within 3 s"
    return [
        (
            "10,000 x 1 msg/s",
            "p50 <= 25 ms, p99 <= 60 ms, no loss",
            _latency(ten_p),
            _latency(ten_s),
            _ratio(ten_p and ten_p.p99_ms, ten_s and ten_s.p99_ms, "p99 "),
        ),
        (
            "clients held at 1 msg/s, p99 < 250 ms, no loss",
            ">= 25,000",
            f"{cap_p:,}",
            f"{cap_s:,}",
            _ratio(cap_p, cap_s),
        ),
        ("the most clients tried at 1 msg/s", "", _latency(most_p), _latency(most_s), ""),
        (
            "server CPU per delivery (us), 1 msg/s runs (one event per send)",
            "<= 8",
            _fmt(one_p),
            _fmt(one_s),
            _ratio(one_p, one_s),
        ),
        (
            "server CPU per delivery (us), 5,000 x 50 msg/s (batched)",
            "<= 3",
            _fmt(fifty_p and fifty_p.cpu_us_per_event),
            _fmt(fifty_s and fifty_s.cpu_us_per_event),
            _ratio(fifty_p and fifty_p.cpu_us_per_event, fifty_s and fifty_s.cpu_us_per_event),
        ),
        (
            "5,000 x 50 msg/s",
            ">= 250,000/s, no loss, p99 <= 100 ms",
            _brief(fifty_p),
            _brief(fifty_s),
            _ratio(fifty_p and fifty_p.p99_ms, fifty_s and fifty_s.p99_ms, "p99 "),
        ),
        (
            "idle memory per connection (KB), server RSS + Redis, at the most clients",
            "<= 10",
            _idle_text(most_p),
            _idle_text(most_s),
            _ratio(mem_p, mem_s),
        ),
        (
            "first byte of a new /stream at the most clients held (p99 ms)",
            "<= 10",
            _first_byte(most_p),
            _first_byte(most_s),
            _ratio(fb_p, fb_s),
        ),
        (
            "load client CPU per delivery (us), 1 msg/s runs",
            "reported",
            _fmt(client_p),
            _fmt(client_s),
            "",
        ),
        *_load_rows(prod, stock),
        (
            "Redis connections at the most clients",
            "independent of clients",
            _conns(most_p),
            _conns(most_s),
            "",
        ),
        (
            "time to first byte of /stream, nothing published (ms)",
            "at once",
            _fmt(ttfb.get("product")) if ttfb.get("product") else no_byte,
            _fmt(ttfb.get("stock")) if ttfb.get("stock") else no_byte,
            "",
        ),
    ]


def _client_per_event(runs: list[LoadResult]) -> float | None:
    events = sum(r.delivered for r in runs)
    return sum(r.client_cpu_s for r in runs) / events * 1e6 if events else None


def _idle_kb(r: LoadResult | None) -> float | None:
    if r is None or r.rss_per_conn_kb is None:
        return None
    return r.rss_per_conn_kb + (r.redis_per_conn_kb or 0.0)


def _idle_text(r: LoadResult | None) -> str:
    if r is None:
        return "-"
    return (
        f"{_fmt(_idle_kb(r))} ({_fmt(r.rss_per_conn_kb)} + {_fmt(r.redis_per_conn_kb)})"
        f" at {r.held:,}"
    )


def _first_byte(r: LoadResult | None) -> str:
    if r is None:
        return "-"
    text = f"{_fmt(r.first_byte_p99_ms)} (p50 {_fmt(r.first_byte_p50_ms)}) at {r.held:,}"
    return text + (f", {r.first_byte_missed} none in 3 s" if r.first_byte_missed else "")


def _latency(r: LoadResult | None) -> str:
    if r is None:
        return "not run"
    return (
        f"{r.clients:,}: held {r.held:,}, p50 {_fmt(r.p50_ms)} ms, p99 {_fmt(r.p99_ms)} ms,"
        f" lost {r.lost:,}/{r.expected:,}"
    )


def _load_rows(prod: list[LoadResult], stock: list[LoadResult]) -> list[Row]:
    rows = []
    for clients, rate, target in (
        (1000, 10, "p99 <= 25 ms, no loss (issue 6)"),
        (5000, 10, "p99 <= 100 ms, no loss (issue 6)"),
    ):
        p, s = _find(prod, clients, rate), _find(stock, clients, rate)
        rows.append(
            (
                f"{clients:,} x {rate} msg/s",
                target,
                _brief(p),
                _brief(s),
                _ratio(p and p.p99_ms, s and s.p99_ms, "p99 "),
            )
        )
    return rows


def _brief(r: LoadResult | None) -> str:
    if r is None:
        return "-"
    return (
        f"p99 {_fmt(r.p99_ms)} ms, lost {r.lost:,}/{r.expected:,}, {_fmt(r.deliveries_per_s, 0)}/s"
    )


def _conns(r: LoadResult | None) -> str:
    return "-" if r is None else f"{r.redis_conns:,} for {r.held:,} clients"


def _ratio(a: float | None, b: float | None, label: str = "") -> str:
    if not a or not b:
        return "-"
    return f"{label}{a / b:.2f}x"


RUNS_NOTE = (
    "Every run on one growing set of streams per server; `expected` = readings sent x"
    " streams held, `delivered` = arrived within the drain time after the last publish;"
    " `events late` = readings that reached at least one client after 250 ms (one stall"
    " or a steady queue?). Server CPU is the gunicorn tree's user+system time over the run"
    " (replaced workers included); client CPU is the load client's, on the same cores."
    " Redis KB/conn is Redis's used_memory growth per stream held. First byte (runs of"
    " 10,000 clients or more): 100 new streams opened one after another during the run"
    " (HTTP/1.0, closed after one byte); their opening is in that run's server CPU."
    " A capacity step that failed was run a second time, and both runs are listed."
)


def render(
    runs: dict[str, list[LoadResult]],
    caps: dict[str, list[LoadResult]],
    ttfb: dict[str, float | None],
    figures: list[Figure],
    conds: list[str],
    *,
    quick: bool,
    seconds: float,
) -> str:
    """The whole of docs/benchmarks.md."""
    command = "python -m bench" + (" --quick" if quick else "")
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`{command}`; {seconds / 60:.1f} min). Do not edit by"
        " hand: the notes at the end come from `bench/notes.md`.",
        "",
        "## Conditions",
        "",
        *[f"- {c}" for c in conds],
        "",
        *_section("Summary (targets from issue 18)", _summary_table(runs, caps, ttfb)),
        *_section(
            "Fan-out runs",
            [RUNS_NOTE, "", *load_table([r for rows in runs.values() for r in rows])],
        ),
        "![p99 latency against clients](bench-p99.png)",
        "",
        *_section("Recorder, history API, producer, MQTT bridge", _figure_table(figures)),
    ]
    notes = Path(__file__).with_name("notes.md")
    if notes.exists():
        lines.append(notes.read_text().rstrip())
    return "\n".join(lines) + "\n"


def _section(title: str, body: list[str]) -> list[str]:
    return [f"## {title}", "", *body, ""]


def _summary_table(
    runs: dict[str, list[LoadResult]],
    caps: dict[str, list[LoadResult]],
    ttfb: dict[str, float | None],
) -> list[str]:
    head = ["| what | target | product | stock flask-sse | product / stock |", "|" + " --- |" * 5]
    return head + [f"| {' | '.join(row)} |" for row in summary(runs, caps, ttfb)]


def _figure_table(figures: list[Figure]) -> list[str]:
    head = ["| what | figure | conditions |", "| --- | --- | --- |"]
    return head + [f"| {f.name} | {f.value:,.1f} {f.unit} | {f.conditions} |" for f in figures]


def write_all(
    out: Path,
    runs: dict[str, list[LoadResult]],
    caps: dict[str, list[LoadResult]],
    ttfb: dict[str, float | None],
    figures: list[Figure],
    conds: list[str],
    *,
    quick: bool,
    seconds: float,
) -> None:
    """benchmarks.md, bench-p99.png and bench-results.json into `out`."""
    (out / "benchmarks.md").write_text(
        render(runs, caps, ttfb, figures, conds, quick=quick, seconds=seconds)
    )
    plot(caps, out / "bench-p99.png")
    write_json(
        out / "bench-results.json",
        {
            "runs": runs,
            "capacity_runs": caps,
            "ttfb_ms": ttfb,
            "figures": figures,
            "conditions": conds,
            "quick": quick,
            "seconds": seconds,
        },
    )


def rerender(out: Path) -> None:
    """Write benchmarks.md and the plot again from bench-results.json (after editing notes)."""
    data = json.loads((out / "bench-results.json").read_text())

    def results(group: dict[str, list[dict]]) -> dict[str, list[LoadResult]]:
        """LoadResults back from their JSON rows."""
        return {
            name: [LoadResult(**{k: v for k, v in r.items() if k != "lost"}) for r in rows]
            for name, rows in group.items()
        }

    runs, caps = results(data["runs"]), results(data["capacity_runs"])
    figures = [Figure(**f) for f in data["figures"]]
    (out / "benchmarks.md").write_text(
        render(
            runs,
            caps,
            data["ttfb_ms"],
            figures,
            data["conditions"],
            quick=data["quick"],
            seconds=data["seconds"],
        )
    )
    plot(caps, out / "bench-p99.png")
