"""A real S3 API on this machine for the download tests, never the internet: moto's server
with a public bucket in the official BioMassters layout, and a proxy in front of it that
misbehaves on purpose (a 500, a body cut mid-file, wrong bytes) and logs every request."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest


class LocalS3:
    """moto's S3 server on 127.0.0.1, buckets readable without credentials like the official."""

    def __init__(self) -> None:
        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.client = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def publish(
        self, folder: Path, bucket: str, skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None
    ) -> list[str]:
        """Upload the files of ``folder`` under their relative paths (the official keys) into a new
        public bucket: all but ``skip``, or the metadata and ``only``; returns the keys."""
        self.client.create_bucket(Bucket=bucket)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
        self.client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        keys = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            key = path.relative_to(folder).as_posix()
            if key in skip or (only is not None and key not in only and not key.endswith(".csv")):
                continue
            self.client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            keys.append(key)
        return keys

    def stop(self) -> None:
        self.server.stop()


class FaultProxy(ThreadingHTTPServer):
    """Forwards path-style S3 requests to ``upstream``; ``faults[key]`` lists what the next GETs
    of ``key`` get, one fault a request: ``"500"`` (an InternalError answer), ``"cut"`` (the
    headers of the whole body, half of it, then the connection closed) or ``"corrupt"`` (one
    byte changed, same length and ETag). ``log`` holds ``(method, key, range)`` of each request."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.latency = 0.0  # seconds added before each answer (a distant server's round trip)
        self.log: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def take(self, method: str, key: str, byte_range: str) -> str:
        with self.lock:
            self.log.append((method, key, byte_range))
            queue = self.faults.get(key)
            return queue.pop(0) if method == "GET" and queue else ""

    def gets(self, start: int = 0) -> list[str]:
        """Keys of the GETs logged from ``start`` on."""
        return [key for method, key, _ in self.log[start:] if method == "GET"]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FaultProxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._forward("GET")

    def do_HEAD(self) -> None:
        self._forward("HEAD")

    def _forward(self, method: str) -> None:
        path = urlsplit(self.path).path
        key = unquote(path.lstrip("/").partition("/")[2])
        fault = self.server.take(method, key, self.headers.get("Range", ""))
        if self.server.latency:
            time.sleep(self.server.latency)
        if fault == "500":
            body = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
            self.send_response(500)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        conn = http.client.HTTPConnection(*self.server.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(method, self.path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        if fault == "corrupt" and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "date", "server"):
                self.send_header(name, value)
        self.end_headers()
        if method == "HEAD":
            return
        if fault == "cut":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture(scope="session")
def local_s3() -> Iterator[LocalS3]:
    """One moto server for the session's download tests (each test takes its own bucket)."""
    pytest.importorskip("moto", reason="moto[s3] (the dev extra) runs the local S3 server")
    server = LocalS3()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def synth_bucket(local_s3: LocalS3, synth_root: Path) -> str:
    """The synthetic chips in the official layout, published without the test labels' metadata
    (as the official buckets: their sizes come from a listing)."""
    local_s3.publish(synth_root, "synth-public", skip=("test_agbm_metadata.csv",))
    return "synth-public"


@pytest.fixture
def fault_proxy(local_s3: LocalS3) -> Iterator[FaultProxy]:
    proxy = FaultProxy(local_s3.url)
    yield proxy
    proxy.close()
