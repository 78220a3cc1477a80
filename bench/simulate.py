"""Benchmark of ``chargeguard simulate``: frames/s generated and written, beside the rate of merely writing them.

Usage: ``.venv/bin/python bench/simulate.py [--stations 1000] [--days 1] [--seed 1] [--gzip] [--out DIR]``

Prints, from one run: simulation throughput (frames/s, single process, capture written to disk), the
throughput of merely serialising and writing the same lines (orjson.dumps + buffered write of lines already in
memory, read back in chunks so that memory stays bounded), their ratio, and the peak RSS of the simulation.
"""

from __future__ import annotations

import argparse
import gzip
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

from chargeguard.sim.catalogue import incident_set
from chargeguard.sim.output import simulate
from chargeguard.sim.runner import SimConfig


def write_only_rate(capture: Path, compress: bool) -> tuple[int, float, float]:
    """(lines, wall and CPU seconds spent only in dumps + write) for the lines of ``capture``, re-serialised."""
    opener = gzip.open if compress else open
    spent = cpu = 0.0
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / ("copy.jsonl.gz" if compress else "copy.jsonl")
        raw = target.open("wb")
        out = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) if compress else raw
        )
        with opener(capture, "rb") as source:
            while True:
                chunk = [orjson.loads(line) for line in source.readlines(8 << 20)]
                if not chunk:
                    break
                started, cpu_started = time.perf_counter(), time.process_time()
                out.write(b"".join(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE) for line in chunk))
                spent += time.perf_counter() - started
                cpu += time.process_time() - cpu_started
                count += len(chunk)
        started, cpu_started = time.perf_counter(), time.process_time()
        out.close()
        raw.close()
        spent += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
    return count, spent, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--incidents", default="tuning", choices=("tuning", "holdout", "none"))
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=None, help="keep the output here (default: a temporary dir)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        config = SimConfig(stations=args.stations, days=args.days, seed=args.seed,
                           incidents=incident_set(args.incidents))  # fmt: skip
        started, cpu_started = time.perf_counter(), time.process_time()
        stats = simulate(config, out, compress=args.gzip)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        lines, write_s, write_cpu = write_only_rate(
            out / ("capture.jsonl.gz" if args.gzip else "capture.jsonl"), args.gzip
        )
    sim_rate, sim_cpu_rate = stats.frames / elapsed, stats.frames / cpu
    write_rate, write_cpu_rate = lines / write_s, lines / write_cpu
    print(f"simulate: {args.stations} stations x {args.days:g} days, seed {args.seed}, gzip={args.gzip}")
    print(
        f"  frames {stats.frames:,}  lines {stats.lines:,}  sessions {stats.sessions:,}  incidents {stats.incidents}"
    )
    print(
        f"  simulate (generate + serialise + write): {sim_rate:,.0f} frames/s wall ({elapsed:.1f} s), "
        f"{sim_cpu_rate:,.0f} frames per CPU-second"
    )
    print(
        f"  write only (orjson.dumps + write):       {write_rate:,.0f} lines/s wall ({write_s:.1f} s), "
        f"{write_cpu_rate:,.0f} lines per CPU-second"
    )
    print(
        f"  ratio simulate / write-only:             {sim_rate / write_rate:.2f} wall, "
        f"{sim_cpu_rate / write_cpu_rate:.2f} CPU"
    )
    print(f"  peak RSS of the run:                     {peak_mb:,.0f} MB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
