"""A local HTTP receiver for alert notifications: what Apprise really sends, over a real socket."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """One request the receiver answered with success."""

    path: str
    headers: dict[str, str]
    body: dict

    @property
    def title(self) -> str:
        """The notification's title, whichever service format carried it."""
        return self.body.get("title") or self.headers.get("X-Title", "")

    @property
    def message(self) -> str:
        """Its body text."""
        return self.body.get("message", "")


@dataclass
class Receiver:
    """Records every notification; answers 500 to the first `fail_first` requests."""

    port: int
    fail_first: int = 0
    requests: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def json_url(self, secret: str = "") -> str:
        """An Apprise json:// URL to this receiver."""
        auth = f"user:{secret}@" if secret else ""
        return f"json://{auth}127.0.0.1:{self.port}/hook"

    def ntfy_url(self, topic: str = "sensors") -> str:
        """An Apprise ntfy:// URL to this receiver."""
        return f"ntfy://127.0.0.1:{self.port}/{topic}"

    def titles(self) -> list[str]:
        """Titles received so far, in order."""
        with self.lock:
            return [r.title for r in self.received]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Block until `count` notifications arrived (AssertionError at the deadline)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.received)} of {count} notifications: {self.titles()}")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.requests += 1
                failing = receiver.requests <= receiver.fail_first
            if failing:
                self.send_response(500)
                self.end_headers()
                return
            try:
                body = (
                    json.loads(raw) if raw.strip().startswith(b"{") else {"message": raw.decode()}
                )
            except ValueError:
                body = {"message": raw.decode(errors="replace")}
            with receiver.lock:
                receiver.received.append(Received(self.path, dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"id":"x","event":"message"}')

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test asserts what arrived

    return Handler


@contextmanager
def receiver(fail_first: int = 0, port: int = 0) -> Iterator[Receiver]:
    """A running receiver on 127.0.0.1 (a free port unless `port` is given)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(Receiver(0)))
    rec = Receiver(server.server_address[1], fail_first)
    server.RequestHandlerClass = _handler(rec)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
