"""`make run`: Redis (private unless REDIS_URL is set), recorder, producers, web;
the MQTT bridge too when MQTT_URL is set."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from dotenv import dotenv_values

from devtools.stack import ROOT, Stack


def start_bridge(stack: Stack, mqtt_url: str) -> None:
    """The MQTT bridge (MQTT_URL is set), with an outbox of its own beside the producer's."""
    outbox = Path(stack.env["OUTBOX_PATH"]).with_name("mqtt-outbox.sqlite3")
    stack.start("mqtt-bridge", ["-m", "producers.mqtt"], OUTBOX_PATH=str(outbox))
    print(f"mqtt:     {mqtt_url.rpartition('@')[2]}  (the bridge, python -m producers.mqtt)")


def main() -> int:
    """Start everything, print the URL, stop everything on Ctrl-C."""
    port = os.environ.get("PORT", "9999")
    stack = Stack.create(Path(os.environ.get("DATA_DIR", ROOT / "data")))
    for name in ("DATABASE_PATH", "OUTBOX_PATH"):
        if os.environ.get(name):
            stack.env[name] = os.environ[name]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Started from a script in the background, SIGINT arrives ignored;
    # Ctrl-C must still stop everything.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        redis_url = stack.start_redis()
        print(f"redis:    {redis_url}" + ("  (private, stopped on exit)" if stack.redis else ""))
        stack.start("recorder", ["-m", "recorder"])
        # The demo always; the host's own sensors where they can be read.
        stack.start("producer", ["-m", "producers"], SENSORS=os.environ.get("SENSORS", "demo,auto"))
        # From the environment or .env (which the bridge reads itself).
        mqtt_url = os.environ.get("MQTT_URL") or dotenv_values(ROOT / ".env").get("MQTT_URL")
        if mqtt_url:
            start_bridge(stack, mqtt_url)
        url = stack.start_web(port=int(port))
        print(f"dashboard: {url}   (Ctrl-C stops every process started here)", flush=True)
        while all(p.poll() is None for p in stack.procs.values()):
            time.sleep(0.5)
        dead = [n for n, p in stack.procs.items() if p.poll() is not None]
        print(f"stopped because {', '.join(dead)} exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        print("stopping...", file=sys.stderr)
        stack.stop_all()


if __name__ == "__main__":
    sys.exit(main())
