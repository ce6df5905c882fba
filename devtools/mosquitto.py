"""A private Mosquitto on loopback with a password file, for tests and benchmarks."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from devtools import processes
from devtools.redis_server import free_port

USER = "bridge"
PASSWORD = "test-password-not-secret"  # noqa: S105 - a throwaway broker on loopback


class Mosquitto:
    """Debian's mosquitto: no anonymous access, persistence on, restartable on its port."""

    def __init__(self, port: int | None = None, tls: tuple[Path, Path, Path] | None = None) -> None:
        self.port = port or free_port()
        self.tls = tls  # (CA, certificate, key): the listener speaks only TLS
        self.dir = Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The MQTT_URL of this broker, with the bridge's credentials."""
        if self.tls:
            return f"mqtts://{USER}:{PASSWORD}@localhost:{self.port}"
        return f"mqtt://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    def _configure(self) -> Path:
        passwd = self.dir / "passwd"
        if not passwd.exists():
            subprocess.run(
                ["mosquitto_passwd", "-b", "-c", str(passwd), USER, PASSWORD],
                check=True,
                capture_output=True,
            )
            passwd.chmod(0o600)
        tls = ""
        if self.tls:
            ca, cert, key = self.tls
            tls = f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n{tls}"
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
            # Sessions and queued QoS 1 messages survive a restart, as on a real install.
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 1\n"
            # Mosquitto's default of 1,000 queued messages per client drops
            # the rest of a burst or of a long bridge restart (docs/mqtt.md).
            "max_queued_messages 100000\n"
            # Started as root, mosquitto would switch to its own user, who cannot read our files.
            f"user {getpass.getuser()}\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\n"
        )
        return conf

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start it and wait until it accepts connections."""
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(exe):
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        log = (self.dir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([exe, "-c", str(self._configure())], stdout=log, stderr=log)
        log.close()
        processes.wait_listening(
            self.proc,
            "mosquitto",
            ("127.0.0.1", self.port),
            lambda: (self.dir / "mosquitto.log").read_text(),
            timeout,
        )
        return self

    def stop(self) -> None:
        """Stop it (SIGTERM: it saves its sessions first)."""
        if self.proc is not None:
            processes.stop(self.proc)
            self.proc = None

    def close(self) -> None:
        """Stop it and remove its files."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
