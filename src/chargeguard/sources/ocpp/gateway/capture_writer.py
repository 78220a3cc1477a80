"""The default gateway recorder: capture JSON Lines with tokens pseudonymised and secrets redacted, rotated by
size and age, each finished file gzip-compressed in the background.

Files are ``<dir>/capture-<UTC start>-<n>.jsonl`` while written and ``.jsonl.gz`` once rotated; every file is a
valid capture on its own, readable by ``chargeguard scan``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import orjson
import structlog

from chargeguard.sources.ocpp.gateway.observer import CaptureLine
from chargeguard.sources.ocpp.gateway.redact import sanitise_frame
from chargeguard.vault.pseudonyms import Pseudonymiser

log = structlog.get_logger("chargeguard.gateway.capture")


def gzip_file(path: Path) -> Path:
    """Compress ``path`` to ``path.gz`` and remove the original; returns the new path."""
    target = path.with_name(path.name + ".gz")
    with path.open("rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)
    path.unlink()
    return target


class CaptureWriter:
    """A :class:`~chargeguard.sources.ocpp.gateway.observer.FrameObserver` writing a rotated capture."""

    def __init__(
        self,
        directory: Path,
        pseudonymiser: Pseudonymiser,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        max_age_s: float = 86400.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self._pseudonymiser = pseudonymiser
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._written = 0
        self._opened_at = 0.0
        self._sequence = 0
        self._compressor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture-gzip")
        self._pending: list[Future[Path]] = []
        self.lines_written = 0

    @property
    def current_path(self) -> Path | None:
        return self._path

    def on_frame(self, line: CaptureLine) -> None:
        frame = line.get("frame")
        clean = dict(line)
        if isinstance(frame, list):
            clean["frame"] = sanitise_frame(frame, self._pseudonymiser)
        self._write(clean)

    def on_connection(self, line: CaptureLine) -> None:
        self._write(line)

    def _write(self, line: dict[str, Any]) -> None:
        data = orjson.dumps(line) + b"\n"
        if self._file is not None and (
            self._written + len(data) > self._max_bytes or self._clock() - self._opened_at >= self._max_age_s
        ):
            self.rotate()
        if self._file is None:
            self._open()
        assert self._file is not None
        self._file.write(data)
        self._written += len(data)
        self.lines_written += 1

    def _open(self) -> None:
        self._sequence += 1
        stamp = self._wall_clock().astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self._path = self._dir / f"capture-{stamp}-{self._sequence}.jsonl"
        self._file = self._path.open("ab")
        self._written = 0
        self._opened_at = self._clock()
        log.info("gateway.capture.opened", path=str(self._path))

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def rotate(self) -> None:
        """Close the current file and compress it in the background."""
        if self._file is None or self._path is None:
            return
        self._file.close()
        self._pending.append(self._compressor.submit(gzip_file, self._path))
        self._pending = [f for f in self._pending if not f.done()]
        self._file = None
        self._path = None

    def close(self) -> None:
        """Flush and compress the last file; waits for background compression."""
        self.rotate()
        self._compressor.shutdown(wait=True)
        for future in self._pending:
            future.result()
        self._pending.clear()
