"""Writes a simulation to a directory: capture.jsonl(.gz), stations.csv, truth.jsonl and network.json."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from chargeguard.sim.distributions import fitted
from chargeguard.sim.exchange import Line
from chargeguard.sim.network import write_inventory
from chargeguard.sim.runner import SimConfig, SimStats, Simulation
from chargeguard.sim.timefmt import format_ts

_FLUSH_LINES = 4096


class CaptureWriter:
    """Buffered JSON Lines writer; gzip output is reproducible (no file name, mtime 0 in the header)."""

    def __init__(self, path: Path, *, compress: bool) -> None:
        self._raw: IO[bytes] = path.open("wb")
        self._gzip = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6)
            if compress
            else None
        )
        self._buffer: list[bytes] = []

    def write(self, t: float, line: Line) -> None:
        line["ts"] = format_ts(t)
        self._buffer.append(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
        if len(self._buffer) >= _FLUSH_LINES:
            (self._gzip or self._raw).write(b"".join(self._buffer))
            self._buffer.clear()

    def write_chunk(self, chunk: list[bytes]) -> None:
        """Write already serialised lines (newline-terminated)."""
        (self._gzip or self._raw).write(b"".join(chunk))

    def close(self) -> None:
        (self._gzip or self._raw).write(b"".join(self._buffer))
        self._buffer.clear()
        if self._gzip is not None:
            self._gzip.close()
        self._raw.close()


def simulate(
    config: SimConfig,
    out_dir: Path,
    *,
    compress: bool = False,
    progress: Callable[[float], None] | None = None,
) -> SimStats:
    """Run ``config`` and write its files into ``out_dir`` (created if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sim = Simulation(config)
    write_inventory(sim.network, out_dir / "stations.csv")
    writer = CaptureWriter(out_dir / ("capture.jsonl.gz" if compress else "capture.jsonl"), compress=compress)
    try:
        stats = sim.run_bytes(writer.write_chunk, progress)
    finally:
        writer.close()
    truths = sorted(stats.truths, key=lambda t: (t.start, t.kind, t.stations))
    with (out_dir / "truth.jsonl").open("wb") as handle:
        for truth in truths:
            handle.write(orjson.dumps(truth.as_json(), option=orjson.OPT_APPEND_NEWLINE))
    meta: dict[str, Any] = {
        "seed": config.seed,
        "stations": config.stations,
        "days": config.days,
        "ocpp": config.ocpp,
        "start": format_ts(sim.start),
        "end": format_ts(sim.end),
        "sample_interval_s": config.sample_interval_s,
        "incident_rate": config.incident_rate,
        "lines": stats.lines,
        "frames": stats.frames,
        "sessions": stats.sessions,
        "incidents": stats.incidents,
        "incidents_skipped": stats.skipped,
        "firmware_hosts": sorted({s.hardware.fw_host for s in sim.network.stations}),
        "distribution_sources": fitted().sources,
    }
    (out_dir / "network.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\n")
    return stats


def discard() -> Callable[[float, Line], None]:
    """A writer that only formats and serialises (for benchmarks of generation without I/O)."""
    sink = io.BytesIO()

    def write(t: float, line: Line) -> None:
        line["ts"] = format_ts(t)
        sink.write(orjson.dumps(line))
        if sink.tell() > 1 << 24:
            sink.seek(0)
            sink.truncate()

    return write
