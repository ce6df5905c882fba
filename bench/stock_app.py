"""The reference: stock flask-sse, under the same gunicorn/gevent options as `python -m web`.

Run as `python -m bench.stock_app` with REDIS_URL and PORT set. Only the app
differs from the product's server: `web.__main__.options` gives both the same
worker class, workers, worker_connections, backlog, timeouts and fd limit.
"""

from __future__ import annotations

# `web.__main__` patches with gevent first, exactly as for the product.
import web.__main__ as web_main  # isort: skip

import sys
from typing import Any

from flask import Flask
from flask_sse import sse

from shared.settings import Settings


def create_app(redis_url: str) -> Flask:
    """flask-sse as its README sets it up, plus /healthz for the bench to wait on."""
    app = Flask(__name__)
    app.config["REDIS_URL"] = redis_url
    app.register_blueprint(sse, url_prefix="/stream")

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    return app


class StockServer(web_main.WebServer):
    """The product's gunicorn application class, loading the stock app instead."""

    def __init__(self, options: dict[str, Any], redis_url: str) -> None:
        self.redis_url = redis_url
        super().__init__(options)

    def load(self) -> Any:
        return create_app(self.redis_url)


def stock_options(settings: Settings) -> dict[str, Any]:
    """The product's gunicorn options without its hub hooks and its worker subclass."""
    opts = web_main.options(settings)
    for hook in ("post_worker_init", "worker_exit"):
        opts.pop(hook)
    opts["worker_class"] = "gevent"  # stock gunicorn: the product's send tweak is its own
    opts["proc_name"] = "flask-sse-stock"
    return opts


def main() -> int:
    """Serve until SIGTERM."""
    settings = Settings.from_env()
    web_main.raise_fd_limit()
    StockServer(stock_options(settings), settings.redis_url).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
