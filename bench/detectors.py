"""Per-detector cost of the token, metering and session detectors, in microseconds per capture line.

Normalises a capture once (``chargeguard simulate`` output, generated and cached in --workdir when not given) into
a list of events, then feeds, for each detector of ``rules.tokens.DETECTORS`` and ``rules.metering.DETECTORS``
in registration order, every event it consumes to ``process`` (findings consumed), timing CPU time. Also feeds
all ten together, interleaved per event exactly as the engine does (shared state between them stays valid), and
prints the cost of merely iterating the same events with the engine's routing lookup (baseline, same run).

Usage: ``python bench/detectors.py [--capture FILE --stations FILE] [--workdir DIR] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chargeguard.detectors.base import Detector, DetectorContext
from chargeguard.detectors.rules import metering, tokens
from chargeguard.events import Event
from chargeguard.inventory import Inventory, load_inventory
from chargeguard.sources.capture import ConnectionRecord, FrameRecord, read_capture
from chargeguard.sources.ocpp.normalize import Normaliser
from chargeguard.sources.reorder import reorder

CLASSES: tuple[type[Detector[Any]], ...] = (*tokens.DETECTORS, *metering.DETECTORS)


def _events(capture: Path) -> tuple[list[Event], int]:
    normaliser = Normaliser(lambda token: "tok1_" + str(abs(hash(token)))[:15].rjust(15, "0"))
    events: list[Event] = []
    lines = 0
    items = reorder(read_capture(str(capture)), 5.0, lambda item: getattr(item, "ts", None))
    for item in items:
        lines += 1
        if isinstance(item, FrameRecord):
            events.extend(normaliser.frame(item))
        elif isinstance(item, ConnectionRecord):
            events.extend(normaliser.connection(item))
        else:
            events.extend(normaliser.bad_line(item))
    return events, lines


def _build(context: DetectorContext) -> list[Detector[Any]]:
    return [cls(cls.Config(), context) for cls in CLASSES]


def _context(inventory: Inventory | None) -> DetectorContext:
    return DetectorContext(inventory=inventory) if inventory is not None else DetectorContext()


def _time_one(det: Detector[Any], events: list[Event]) -> float:
    consumes = det.consumes
    mine = [e for e in events if type(e) in consumes]
    process = det.process
    cpu = time.process_time()
    for event in mine:
        for _ in process(event):
            pass
    return time.process_time() - cpu


def _time_all(dets: list[Detector[Any]], events: list[Event]) -> float:
    routes: dict[type[Any], list[Detector[Any]]] = {}
    for det in dets:
        for kind in det.consumes:
            routes.setdefault(kind, []).append(det)
    get = routes.get
    cpu = time.process_time()
    for event in events:
        for det in get(type(event), ()):
            for _ in det.process(event):
                pass
    return time.process_time() - cpu


def _time_baseline(events: list[Event]) -> float:
    routes: dict[type[Any], list[object]] = {}
    get = routes.get
    cpu = time.process_time()
    for event in events:
        for _ in get(type(event), ()):
            pass
    return time.process_time() - cpu


def _capture(args: argparse.Namespace) -> tuple[Path, Path]:
    if args.capture is not None:
        return args.capture, args.stations
    out = args.workdir
    capture, stations = out / "capture.jsonl", out / "stations.csv"
    if not capture.exists():
        cmd = [sys.executable, "-m", "chargeguard", "simulate", "--stations", "200", "--days", "2"]
        subprocess.run([*cmd, "--seed", "1", "--out", str(out)], check=True)
    return capture, stations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--capture", type=Path, default=None)
    parser.add_argument("--stations", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/chargeguard-bench-detectors"))
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per detector")
    args = parser.parse_args()
    capture, stations = _capture(args)
    inventory = load_inventory(stations) if stations is not None and stations.exists() else None
    events, lines = _events(capture)
    print(f"{lines} capture lines, {len(events)} events ({capture})")
    per_line = 1e6 / lines
    base = min(_time_baseline(events) for _ in range(args.repeat))
    print(f"{'iterate events (baseline)':40s} {base * per_line:7.2f} us/line")
    total = 0.0
    for index, cls in enumerate(CLASSES):  # each alone: the cost it adds
        best = float("inf")
        for _ in range(args.repeat):
            best = min(best, _time_one(_build(_context(inventory))[index], events))
        total += best
        print(f"{cls.info.name:40s} {best * per_line:7.2f} us/line")
    print(f"{'sum of the above':40s} {total * per_line:7.2f} us/line")
    together = min(_time_all(_build(_context(inventory)), events) for _ in range(args.repeat))
    print(f"{'all ten together (engine order)':40s} {together * per_line:7.2f} us/line")


if __name__ == "__main__":
    main()
