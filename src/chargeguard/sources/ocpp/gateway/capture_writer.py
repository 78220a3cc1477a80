"""The default gateway recorder: capture JSON Lines with tokens pseudonymised and secrets redacted, written in
batches after the relay step, rotated by size and age, each finished file gzip-compressed in the background.

Files are ``<dir>/capture-<UTC start>-<n>.jsonl`` while written and ``.jsonl.gz`` once rotated; every file is a
valid capture on its own, readable by ``chargeguard scan``.
"""

from __future__ import annotations

import asyncio
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
        batch_lines: int = 256,
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
        self._queue: list[CaptureLine] = []
        self._scheduled = False
        self._draining = False
        self._batch_lines = batch_lines
        self.lines_written = 0
        self.lines_failed = 0

    @property
    def current_path(self) -> Path | None:
        return self._path

    def on_frame(self, line: CaptureLine) -> None:
        self._enqueue(line)

    def on_connection(self, line: CaptureLine) -> None:
        self._enqueue(line)

    def _enqueue(self, line: CaptureLine) -> None:
        """Lines are written in batches after the relay step that produced them (``loop.call_soon``): the frame
        is on its way before it is sanitised and written, and one batch serves every frame of a loop iteration."""
        self._queue.append(line)
        if len(self._queue) >= self._batch_lines:
            self._drain()
            return
        if not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (library use): write at once
                self._drain()
                return
            self._scheduled = True
            loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, []
        self._draining = True
        try:
            self._write_all(queue)
        finally:
            self._draining = False

    def _write_all(self, queue: list[CaptureLine]) -> None:
        for line in queue:
            frame = line.get("frame")
            if isinstance(frame, list):
                line = {**line, "frame": sanitise_frame(frame, self._pseudonymiser)}
            try:
                self._write(line)
            except (OSError, TypeError) as exc:  # a full disk must not stop the relay; counted and logged
                self.lines_failed += 1
                log.error("gateway.capture.write_failed", error=type(exc).__name__)

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
        self._drain()
        if self._file is not None:
            self._file.flush()

    def rotate(self) -> None:
        """Close the current file and compress it in the background."""
        if self._queue and not self._draining:
            self._drain()
        if self._file is None or self._path is None:
            return
        self._file.close()
        self._pending.append(self._compressor.submit(gzip_file, self._path))
        self._pending = [f for f in self._pending if not f.done()]
        self._file = None
        self._path = None

    def close(self) -> None:
        """Flush and compress the last file; waits for background compression."""
        self._drain()
        self.rotate()
        self._compressor.shutdown(wait=True)
        for future in self._pending:
            future.result()
        self._pending.clear()
