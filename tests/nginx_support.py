"""Run Debian's nginx with deploy/nginx/ the way the compose `nginx` service does.

`render_nginx` fills npm-like.conf's ${NPM_...} placeholders exactly as the
nginx image's envsubst step would, and wraps it in a main config whose pid,
logs and temp files live in a private directory, so nginx runs without touching
/etc or /var. `DnsStub` plays Docker's embedded DNS: one name, several A
records, so nginx's resolver round-robins over replicas as it does in compose.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

from devtools import processes

ROOT = Path(__file__).resolve().parent.parent
NGINX_DIR = ROOT / "deploy" / "nginx"
NGINX = "/usr/sbin/nginx"

_MAIN = """\
{user}worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    access_log {dir}/access.log;
{extra}
    include {dir}/conf.d/npm-like.conf;
}}
"""


def render_template(text: str, values: dict[str, str]) -> str:
    """Substitute ${NAME} for the given names only, as envsubst with a list does."""
    out = re.sub(r"\$\{(NPM_\w+)\}", lambda m: values[m.group(1)], text)
    assert "${NPM_" not in out, "a placeholder was left unfilled"
    return out


def render_nginx(
    directory: Path,
    *,
    listen: str,
    resolver: str,
    forward: tuple[str, int],
    read_timeout: str = "90s",
    stream_read_timeout: str | None = None,
    extra_http: str = "",
    snippet_without: str | None = None,
) -> Path:
    """Write an nginx prefix under `directory`; the main config's path.

    `read_timeout` replaces NPM's global 90s; `stream_read_timeout` replaces the
    snippet's 1h (its only change: the snippet is otherwise used verbatim).
    """
    (directory / "conf.d").mkdir(parents=True, exist_ok=True)
    (directory / "npm").mkdir(exist_ok=True)
    (directory / "tmp").mkdir(exist_ok=True)
    snippet = (NGINX_DIR / "sse-advanced.conf").read_text()
    if stream_read_timeout is not None:
        assert snippet.count("proxy_read_timeout 1h;") == 1
        snippet = snippet.replace(
            "proxy_read_timeout 1h;", f"proxy_read_timeout {stream_read_timeout};"
        )
    if snippet_without is not None:
        assert snippet.count(snippet_without) == 1
        snippet = snippet.replace(snippet_without, "")
    (directory / "npm" / "sse-advanced.conf").write_text(snippet)
    values = {
        "NPM_LISTEN": listen,
        "NPM_RESOLVER": resolver,
        "NPM_FORWARD_HOST": forward[0],
        "NPM_FORWARD_PORT": str(forward[1]),
        "NPM_READ_TIMEOUT": read_timeout,
        "NPM_SNIPPET": str(directory / "npm" / "sse-advanced.conf"),
    }
    conf = render_template((NGINX_DIR / "npm-like.conf").read_text(), values)
    (directory / "conf.d" / "npm-like.conf").write_text(conf)
    # NPM's own nginx runs its workers as root; as root here, do the same so the
    # workers can write the private temp directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = directory / "nginx.conf"
    main.write_text(_MAIN.format(dir=directory, user=user, extra=extra_http))
    return main


class DnsStub:
    """A UDP DNS server answering every A query with the same addresses."""

    def __init__(self, addresses: Iterable[str], ttl: int = 1) -> None:
        self.addresses = list(addresses)
        self.ttl = ttl
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DnsStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            answer = self.answer(query)
            if answer:
                self.queries += 1
                self.sock.sendto(answer, peer)

    def answer(self, query: bytes) -> bytes | None:
        """The response to one query: A records for type A, none for others."""
        if len(query) < 12:
            return None
        (ident,) = struct.unpack("!H", query[:2])
        end = 12
        while end < len(query) and query[end] != 0:
            end += query[end] + 1
        question = query[12 : end + 5]
        qtype = struct.unpack("!H", query[end + 1 : end + 3])[0] if end + 3 <= len(query) else 0
        records = self.addresses if qtype == 1 else []
        header = struct.pack("!HHHHHH", ident, 0x8180, 1, len(records), 0, 0)
        body = b"".join(
            struct.pack("!HHHIH", 0xC00C, 1, 1, self.ttl, 4) + socket.inet_aton(ip)
            for ip in records
        )
        return header + question + body


class Nginx:
    """Debian's nginx in the foreground on a rendered prefix; stopped on exit."""

    def __init__(self, conf: Path) -> None:
        self.conf = conf
        self.prefix = conf.parent
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Nginx:
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(self.conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            processes.stop(self.proc)

    def wait_listening(self, host: str, port: int, timeout: float = 10.0) -> None:
        """Until nginx accepts connections; raise with its error log if it died."""
        assert self.proc is not None, "nginx was not started"
        processes.wait_listening(self.proc, "nginx", (host, port), self.error_log, timeout)

    def error_log(self) -> str:
        """The tail of nginx's error log, for assertion messages."""
        path = self.prefix / "error.log"
        return path.read_text()[-3000:] if path.exists() else ""
