"""One object from an S3 bucket to a verified file: resumed, retried, checked, then renamed.

Anonymous requests with boto3 (the BioMassters buckets are public); the client's own retries are
off so that every retry is taken (and counted) here, including a body that breaks off mid-file,
which the client does not retry. A file is written to ``NAME.part`` and renamed to ``NAME`` only
once its size, its MD5 (from a single-part ETag) and the metadata's ``cksum`` agree.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsr_bench.api import GsrBenchError, posix_cksum
from gsr_bench_datasets.biomassters.selection import RemoteFile

CHUNK = 1 << 20
_RETRY_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "503",
    "500",
    "502",
    "504",
}


class SourceError(GsrBenchError):
    """The bucket or endpoint cannot serve the download at all (every file would fail)."""


class Stopped(Exception):
    """The download was asked to stop (Ctrl-C); the ``.part`` file is kept for a resume."""


@dataclass
class Outcome:
    """What fetching one file took and gave."""

    file: RemoteFile
    ok: bool = False
    fetched: int = 0  # bytes received
    resumed: bool = False  # a range request continued a .part file
    retries: int = 0
    verify_failures: int = 0
    problem: str = ""
    md5: str = ""
    checks: tuple[str, ...] = ()  # what the file was verified by: size, md5, cksum


def make_client(endpoint_url: str | None, region: str, workers: int, timeout: float = 30.0) -> Any:
    """An anonymous S3 client with a connection per worker."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(
        signature_version=UNSIGNED,
        max_pool_connections=workers + 2,
        retries={"total_max_attempts": 1},
        # the file's own checks (size, MD5 of the ETag, cksum) are the verification, of ranged
        # and whole responses alike; the client's CRC would only cover the whole ones
        response_checksum_validation="when_required",
        connect_timeout=timeout,
        read_timeout=timeout,
    )
    return boto3.session.Session().client("s3", region_name=region, endpoint_url=endpoint_url, config=config)


def retryable(exc: BaseException) -> bool:
    """Timeouts, resets, a body cut short and 5xx answers: worth another try."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        IncompleteReadError,
        ResponseStreamingError,
    )
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return str(error.get("Code")) in _RETRY_CODES or int(status) >= 500
    return isinstance(
        exc, ConnectionError | ResponseStreamingError | IncompleteReadError | HTTPError | TimeoutError
    )


def describe(exc: BaseException) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')}: {error.get('Message', '') or exc}"
    return f"{type(exc).__name__}: {exc}"


def verify(path: Path, file: RemoteFile, etag: str, total: int | None, outcome: Outcome) -> None:
    """Set ``outcome.problem`` (empty when the file is right), ``md5`` and ``checks``."""
    outcome.problem, outcome.checks = "", ()
    size = path.stat().st_size
    if file.size is not None and total is not None and total != file.size:
        outcome.problem = f"the server's object has {total} bytes, the metadata says {file.size}"
        return
    expected = file.size if file.size is not None else total
    if expected is not None and size != expected:
        outcome.problem = f"{size} bytes received, {expected} expected"
        return
    checks = ["size"]
    data = path.read_bytes()  # one read for both digests: a file is at most 1.4 MB
    outcome.md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if etag and "-" not in etag:  # a multi-part upload's ETag is not the object's MD5
        if outcome.md5 != etag:
            outcome.problem = f"MD5 {outcome.md5} differs from the server's ETag {etag}"
            return
        checks.append("md5")
    if file.cksum is not None:
        found = posix_cksum(data)
        if found != file.cksum:
            outcome.problem = f"cksum {found} differs from the metadata's {file.cksum}"
            return
        checks.append("cksum")
    outcome.checks = tuple(checks)


class Fetcher:
    """Fetches files of one bucket into ``root``, thread-safe (one client, many threads).

    Args:
        client: from :func:`make_client`.
        bucket: the bucket's name.
        root: the download folder; a file's key is its path under it.
        retries: further tries of a file after a retryable failure, with exponential backoff.
        backoff: the first wait in seconds (doubled each retry, with jitter, at most 20 s).
        on_bytes: called with every chunk's size (the progress bar).
        stop: set to make every fetch stop at its next chunk.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        root: Path,
        retries: int = 5,
        backoff: float = 0.5,
        on_bytes: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.client, self.bucket, self.root = client, bucket, root
        self.retries, self.backoff = retries, backoff
        self.on_bytes = on_bytes or (lambda n: None)
        self.stop = stop or threading.Event()

    def fetch(self, file: RemoteFile) -> Outcome:
        """Download, verify and rename one file; after a verification failure the file is
        deleted and fetched once more from the start. Raises :class:`SourceError` when the
        bucket is gone and :class:`Stopped` when asked to stop; other failures are the
        outcome's ``problem``."""
        final = self.root / file.key
        part = final.with_name(final.name + ".part")
        final.parent.mkdir(parents=True, exist_ok=True)
        outcome = Outcome(file)
        for _ in range(2):
            try:
                etag, total = self._download(file, part, outcome)
            except (Stopped, SourceError, OSError):
                raise
            except Exception as exc:
                outcome.problem = describe(exc)
                return outcome
            verify(part, file, etag, total, outcome)
            if not outcome.problem:
                os.replace(part, final)
                outcome.ok = True
                return outcome
            outcome.verify_failures += 1
            part.unlink(missing_ok=True)
        return outcome

    def _download(self, file: RemoteFile, part: Path, outcome: Outcome) -> tuple[str, int | None]:
        from botocore.exceptions import ClientError

        for attempt in range(self.retries + 1):
            try:
                return self._attempt(file, part, outcome)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                if code == "NoSuchBucket":
                    raise SourceError(f"bucket {self.bucket!r} does not exist at this endpoint") from None
                if not retryable(exc) or attempt == self.retries:
                    raise
            except Exception as exc:
                if not retryable(exc) or attempt == self.retries:
                    raise
            outcome.retries += 1
            wait = min(20.0, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
            if self.stop.wait(wait):
                raise Stopped
        raise AssertionError("unreachable")

    def _attempt(self, file: RemoteFile, part: Path, outcome: Outcome) -> tuple[str, int | None]:
        offset = part.stat().st_size if part.exists() else 0
        if file.size is not None and offset > file.size:
            part.unlink()
            offset = 0
        if offset and offset == file.size:  # complete but not verified when the run stopped
            return self._object_info(file.key)
        kwargs = {"Range": f"bytes={offset}-"} if offset else {}
        response = self.client.get_object(Bucket=self.bucket, Key=file.key, **kwargs)
        ranged = response["ResponseMetadata"]["HTTPStatusCode"] == 206
        outcome.resumed = outcome.resumed or ranged
        total = _total(response)
        body = response["Body"]
        try:
            with part.open("ab" if ranged else "wb") as out:
                for chunk in body.iter_chunks(CHUNK):
                    if self.stop.is_set():
                        raise Stopped
                    out.write(chunk)
                    outcome.fetched += len(chunk)
                    self.on_bytes(len(chunk))
        finally:
            body.close()
        return str(response.get("ETag", "")).strip('"'), total

    def confirm(self, file: RemoteFile) -> Outcome:
        """Verify a file already at its final name against the server's size and ETag and the
        metadata (a file of an earlier run that the verified log does not vouch for); fetch it
        again when it is wrong."""
        outcome = Outcome(file)
        try:
            etag, total = self._object_info(file.key)
        except Exception as exc:
            outcome.problem = describe(exc)
            return outcome
        verify(self.root / file.key, file, etag, total, outcome)
        if not outcome.problem:
            outcome.ok = True
            return outcome
        (self.root / file.key).unlink()  # wrong: fetched again from the start
        again = self.fetch(file)
        again.verify_failures += 1
        return again

    def _object_info(self, key: str) -> tuple[str, int | None]:
        """An object's ETag and size from a one-byte ranged GET: a HEAD would need a permission
        of its own on some S3-compatible servers, where reading the object is always allowed."""
        response = self.client.get_object(Bucket=self.bucket, Key=key, Range="bytes=0-0")
        response["Body"].read()
        total = _total(response)
        return str(response.get("ETag", "")).strip('"'), total

    def get_small(self, key: str, dest: Path) -> bool:
        """A metadata file into ``dest`` (verified by its ETag); False when the bucket has no
        such key. Raises :class:`SourceError` when the endpoint or bucket cannot serve it."""
        from botocore.exceptions import ClientError

        try:
            outcome = self._fetch_to(RemoteFile(key, "", "metadata", None), dest)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                return False
            raise SourceError(f"{key}: {describe(exc)}") from None
        except Exception as exc:
            if retryable(exc):
                raise SourceError(f"cannot reach the endpoint ({describe(exc)})") from None
            raise
        if not outcome.ok:
            raise SourceError(f"{key}: {outcome.problem}")
        return True

    def _fetch_to(self, file: RemoteFile, dest: Path) -> Outcome:
        outcome = Outcome(file)
        if dest.is_file():  # a rerun: kept when the server's MD5 says it is the same file
            verify(dest, file, *self._object_info(file.key), outcome)
            if not outcome.problem and "md5" in outcome.checks:
                outcome.ok = True
                return outcome
        part = dest.with_name(dest.name + ".part")
        part.unlink(missing_ok=True)
        etag, total = self._download(file, part, outcome)
        verify(part, file, etag, total, outcome)
        if not outcome.problem:
            os.replace(part, dest)
            outcome.ok = True
        return outcome


def _total(response: dict[str, Any]) -> int:
    """The object's whole size: from ``Content-Range`` of a ranged answer, else its length."""
    content_range = str(response.get("ContentRange") or "")
    if "/" in content_range:
        return int(content_range.rsplit("/", 1)[1])
    return int(response["ContentLength"])
