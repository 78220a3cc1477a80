"""Scan throughput and memory: chargeguard scan vs the floor of merely decoding every line with orjson.

Generates (once, cached in --workdir) a capture of realistic mixed traffic with ``chargeguard simulate`` (about
1.03 million frames: 500 stations over 3.1 days, both OCPP versions, with the tuning incidents; the issue asks
for at least a million frames and the bench refuses a smaller capture), then measures in one
run, each in a fresh single process:

* scan: every detector on, schema validation on, no store (``--no-store``), alerts to a file; ``--runs`` runs (3),
  each in a fresh process: the median is reported and judged against the goal, every run's figure printed;
* decode floor: ``orjson.loads`` of every line of the same file (best of three runs: it is short);
* peak RSS of the scan on the whole capture and on its first quarter (memory must not grow with capture length).

Prints frames/s and lines/s (CPU time and wall time), the ratio to the decode floor, and the peak memory of both runs.
Usage: ``python bench/scan.py [--workdir DIR] [--stations 500] [--days 3.1] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

CHILD_SCAN = """
import resource, sys, time
from pathlib import Path
from chargeguard.inventory import load_inventory
from chargeguard.pipeline import ScanPipeline
from chargeguard.settings import Settings
from chargeguard.vault.pseudonyms import Pseudonymiser
capture, stations = sys.argv[1], sys.argv[2]
pipeline = ScanPipeline(Settings(), Pseudonymiser({1: bytes(range(32))}, 1), inventory=load_inventory(Path(stations)))
wall, cpu = time.perf_counter(), time.process_time()
report = pipeline.run([capture])
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(report.frames, report.lines_read, cpu, wall, rss, sum(report.alerts.values()))
"""

CHILD_DECODE = """
import sys, time, orjson
wall, cpu = time.perf_counter(), time.process_time()
n = 0
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        orjson.loads(line)
        n += 1
print(n, time.process_time() - cpu, time.perf_counter() - wall)
"""


def _child(code: str, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return out.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/chargeguard-bench-scan"))
    parser.add_argument("--stations", type=int, default=500)
    parser.add_argument("--days", type=float, default=3.1)
    parser.add_argument("--runs", type=int, default=3, help="scan runs; the median is reported and judged")
    args = parser.parse_args()
    sim_dir = args.workdir / f"sim-{args.stations}-{args.days}"
    capture = sim_dir / "capture.jsonl"
    if not capture.exists():
        print(f"generating capture in {sim_dir} ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "chargeguard",
                "simulate",
                "--out",
                str(sim_dir),
                "--stations",
                str(args.stations),
                "--days",
                str(args.days),
                "--seed",
                "1",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    stations = str(sim_dir / "stations.csv")
    quarter = sim_dir / "quarter.jsonl"
    if not quarter.exists():
        with capture.open("rb") as src, quarter.open("wb") as dst:
            total = sum(1 for _ in src)
            src.seek(0)
            for i, line in enumerate(src):
                if i >= total // 4:
                    break
                dst.write(line)
    # the floor takes ~1.5 s: on a shared machine one run can land in a busy second, so take the best of three
    lines, dec_cpu, dec_wall = min(
        (_child(CHILD_DECODE, str(capture)) for _ in range(3)), key=lambda r: float(r[1])
    )
    # the scan's speed on a shared machine swings by up to a third between runs minutes apart (other tenants'
    # load on the caches it needs; the floor's working set is one line): run it --runs times, judge the median
    runs = [_child(CHILD_SCAN, str(capture), stations) for _ in range(args.runs)]
    runs.sort(key=lambda r: float(r[2]))
    frames, read, cpu, wall, rss, alerts = runs[len(runs) // 2]
    rss = str(max(int(r[4]) for r in runs))
    q_frames, _, _, _, q_rss, _ = _child(CHILD_SCAN, str(quarter), stations)
    n = int(read)
    if int(frames) < 1_000_000:
        sys.exit(
            f"the capture holds {int(frames):,} frames, fewer than the 1,000,000 asked for: raise --days"
        )
    scan_rate = n / float(cpu)
    frame_rate = int(frames) / float(cpu)
    decode_rate = int(lines) / float(dec_cpu)
    print(f"capture: {capture} ({n:,} lines, {int(frames):,} frames, {int(alerts)} alerts)")
    each = ", ".join(f"{int(r[0]) / float(r[2]):,.0f}" for r in runs)
    print(
        f"scan (validation + every detector, one process): {frame_rate:,.0f} frames/s CPU "
        f"({scan_rate:,.0f} lines/s), {int(frames) / float(wall):,.0f} frames/s wall - the median of "
        f"{len(runs)} runs (frames/s CPU, best first: {each})"
    )
    print(
        f"orjson decode floor:                          {decode_rate:,.0f} lines/s CPU, "
        f"{int(lines) / float(dec_wall):,.0f}/s wall"
    )
    print(
        f"ratio scan / floor (lines/s): {decode_rate / scan_rate:.1f}x slower; goal 50,000 frames/s: "
        f"{'met' if frame_rate >= 50_000 else 'NOT met'}"
    )
    print(
        f"peak RSS: {int(rss) / 1024:,.0f} MiB for {int(frames):,} frames; {int(q_rss) / 1024:,.0f} MiB for "
        f"{int(q_frames):,} frames (ratio {int(rss) / int(q_rss):.2f})"
    )


if __name__ == "__main__":
    main()
