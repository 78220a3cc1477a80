"""Turning imported session records into an OCPP capture, a station inventory and an import report.

Decisions (documented again in docs/evaluation.md):

* **Versions**: ``--ocpp 1.6`` or ``2.0.1`` for every station, or ``mix``: each station speaks one version
  chosen from a hash of the seed and its id (about half each). 1.6 connector N is connector N; 2.0.1
  connector N is EVSE N, connector 1 (inventory rows say ``N`` or ``N/1`` accordingly).
* **Tokens**: a 7-byte hex UID (14 characters, like an ISO 14443 card) from HMAC-SHA256 keyed by the seed over
  ``dataset:user`` - the user id itself is never written. Datasets without user ids get one token per session
  (``dataset:session:<key>``), so no card ever looks shared.
* **Transaction ids**: the dataset's own numeric session id when it has one (unique, at most 9 digits), else
  a counter; so an alert's transaction points back at a dataset row (``oddities.jsonl`` lists the rows).
* **Meter registers**: one cumulative register per connector, starting at a seeded value between 1 and
  9 MWh and carried on continuously from one session's meterStop to the next session's meterStart (sessions
  in start order), so a negative-energy record shows as a rollback and nothing else does.
* **Minute resolution**: the datasets record whole minutes (``09:07`` is some time in [09:07:00, 09:08:00)).
  With ``time_resolution_s`` = 60 (the default) a session starts in the first tenth of its recorded start
  minute and ends in the last fifth of its recorded end minute: the least suspicious reading of the record.
  Squeezing a 3-minute DC session's energy into exactly 180 s would report a power the charger never
  delivered and manufacture capacity alarms the data does not imply. Rows ending before they start keep
  their recorded times exactly. Widening never creates an overlap the records do not show: a station's
  plug-in (and, for 2.0.1 stations starting transactions at plug-in, the transaction) precedes a session's
  start by up to 45 s, so when one session ends less than 50 s before the next one on the same connector
  (or with the same user) starts, the first ends earlier (not before its start) and, if still needed, the
  second starts later, by at most a minute.
* **Odd rows**: passed to the exchange as they are (negative energy, zero energy, end before start); a record
  without an end or an energy becomes a transaction that starts and never stops (the frames up to the
  start, nothing after).
* **Order**: each station sends a BootNotification a minute before its first session; all sessions are
  merged in transport-time order with a heap (a session's frames begin at most a minute before its start).
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import hmac
import io
import itertools
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
import structlog

from chargeguard.sim.exchange import Line, MessageIds, SessionPlan, session_lines
from chargeguard.sim.timefmt import epoch, format_ts
from chargeguard.sources.datasets.oddities import Oddity, find_oddities
from chargeguard.sources.datasets.records import DatasetImport, SessionRecord

log = structlog.get_logger("chargeguard.sources.datasets")

OCPP_CHOICES = ("1.6", "2.0.1", "mix")
_LEAD_S = 180.0  # no session's frames start earlier than this before its start
_PLUG_LEAD = timedelta(seconds=50)  # sim.exchange plugs in (2.0.1: may start the transaction) <= 45 s early
_END_ACTIONS = {"StopTransaction"}
INVENTORY_HEADER = (
    "station",
    "latitude",
    "longitude",
    "max_kw",
    "connectors",
    "location_id",
    "country",
    "connector_id",
    "connector_type",
)


@dataclass(frozen=True, slots=True)
class RenderOptions:
    ocpp: str = "mix"
    seed: int = 0
    sample_interval_s: float = 300.0
    time_resolution_s: float = 60.0


@dataclass(slots=True)
class RenderResult:
    frames: int
    sessions: int
    open_sessions: int
    oddities: list[Oddity]
    transaction_ids: dict[tuple[str, str], str]  # (key, source) of a session -> its wire transaction id
    versions: dict[str, str]


def derive_token(seed: int, dataset: str, user: str) -> str:
    """A 14-hex-digit card UID derived from a user id under a seed-keyed HMAC (never the id itself)."""
    key = hashlib.sha256(f"chargeguard-import-token:{seed}".encode()).digest()
    digest = hmac.new(key, f"{dataset}:{user}".encode(), hashlib.sha256).digest()
    return digest[:7].hex().upper()


def station_version(station: str, options: RenderOptions) -> str:
    if options.ocpp != "mix":
        return options.ocpp
    digest = hashlib.sha256(f"{options.seed}|{station}".encode()).digest()
    return "1.6" if digest[0] < 128 else "2.0.1"


def assign_transaction_ids(sessions: Sequence[SessionRecord]) -> list[str]:
    """Numeric dataset keys where they are unique and short, else a counter above the largest one."""
    counts = Counter(s.key for s in sessions)
    usable = [s.key.isdigit() and len(s.key) <= 9 and counts[s.key] == 1 for s in sessions]
    top = max((int(s.key) for s, ok in zip(sessions, usable, strict=True) if ok), default=0)
    ids: list[str] = []
    for s, ok in zip(sessions, usable, strict=True):
        if ok:
            ids.append(str(int(s.key)))
        else:
            top += 1
            ids.append(str(top))
    return ids


def _boot_lines(station: str, ocpp: str, model: str | None, t: float, ids: MessageIds) -> list[Line]:
    vendor = (model or "Unknown").split()[0][:20]
    model_name = (model or "Unknown")[:20]
    stamp = format_ts(t)
    if ocpp == "1.6":
        payload: dict[str, Any] = {"chargePointVendor": vendor, "chargePointModel": model_name}
    else:
        payload = {"chargingStation": {"vendorName": vendor, "model": model_name}, "reason": "PowerUp"}
    message_id = ids.next(station, "station")
    answer = {"currentTime": format_ts(t + 0.04), "interval": 300, "status": "Accepted"}
    return [
        {"ts": stamp, "station": station, "event": "connect", "security_profile": 1},
        {"ts": format_ts(t + 0.01), "station": station, "ocpp": ocpp, "from": "station",
         "frame": [2, message_id, "BootNotification", payload]},
        {"ts": format_ts(t + 0.04), "station": station, "ocpp": ocpp, "from": "csms",
         "frame": [3, message_id, answer]},
    ]  # fmt: skip


def _shift_stop(lines: list[Line], delta_wh: int) -> None:
    """Change the meterStop a session reports (1.6 StopTransaction, 2.0.1 Ended register) by ``delta_wh``."""
    for line in lines:
        frame = line["frame"]
        if frame[0] != 2:
            continue
        if frame[2] == "StopTransaction":
            frame[3]["meterStop"] += delta_wh
        elif frame[2] == "TransactionEvent" and frame[3].get("eventType") == "Ended":
            for meter_value in frame[3].get("meterValue", []):
                for sampled in meter_value["sampledValue"]:
                    if sampled.get("measurand") == "Energy.Active.Import.Register":
                        sampled["value"] += delta_wh


def _open_session(lines: list[Line]) -> list[Line]:
    """Cut a rendered session at its stop: keep the frames before it and the answers to kept CALLs."""
    kept: list[Line] = []
    calls: set[str] = set()
    stopped = False
    for line in lines:
        frame = line["frame"]
        if frame[0] == 2:
            is_end = frame[2] in _END_ACTIONS or (
                frame[2] == "TransactionEvent" and frame[3].get("eventType") == "Ended"
            )
            stopped = stopped or is_end
            if stopped:
                continue
            calls.add(frame[1])
            kept.append(line)
        elif frame[1] in calls:
            kept.append(line)
    return kept


def session_times(
    sessions: Sequence[SessionRecord], options: RenderOptions
) -> list[tuple[datetime, datetime]]:
    """Start and end of each session on the wire (see *Minute resolution* in the module docstring)."""
    step = options.time_resolution_s
    times: list[tuple[datetime, datetime]] = []
    for s in sessions:
        end = s.end if s.end is not None else s.start + timedelta(seconds=1)
        if step > 0 and s.end is not None and s.end >= s.start:
            rng = random.Random(f"{options.seed}|jitter|{s.dataset}|{s.key}|{s.source}")
            times.append(
                (
                    s.start + timedelta(seconds=rng.uniform(0.0, 0.1 * step)),
                    s.end + timedelta(seconds=rng.uniform(0.8 * step, 0.99 * step)),
                )
            )
        else:
            times.append((s.start, end))
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, s in enumerate(sessions):
        if s.end is None or s.end < s.start:
            continue
        groups.setdefault(("connector", s.station, str(s.connector)), []).append(i)
        if s.user is not None:
            groups.setdefault(("user", s.dataset, s.user), []).append(i)
    for indices in groups.values():
        indices.sort(key=lambda i: (sessions[i].start, sessions[i].end or sessions[i].start, i))
        for a, b in itertools.pairwise(indices):
            end_a = sessions[a].end
            if end_a is None or end_a > sessions[b].start:
                continue  # the records themselves overlap: keep it
            (start_a, end_a_wire), (start_b, end_b) = times[a], times[b]
            if end_a_wire + _PLUG_LEAD <= start_b:
                continue
            end_a_wire = max(start_a, start_b - _PLUG_LEAD)
            if end_a_wire + _PLUG_LEAD > start_b:
                start_b = end_a_wire + _PLUG_LEAD
                end_b = max(end_b, start_b)
            times[a] = (start_a, end_a_wire)
            times[b] = (start_b, end_b)
    return times


def render(data: DatasetImport, out: IO[bytes], options: RenderOptions) -> RenderResult:
    """Write the capture of ``data`` to ``out``; returns counts, oddities and the transaction ids used."""
    order = sorted(range(len(data.sessions)), key=lambda i: (data.sessions[i].start, data.sessions[i].key))
    sessions = [data.sessions[i] for i in order]
    tx_ids = assign_transaction_ids(sessions)
    wire_times = session_times(sessions, options)
    ids = MessageIds(options.seed, style="mixed")
    registers: dict[tuple[str, int], float] = {}
    versions: dict[str, str] = {}
    heap: list[tuple[str, int, Line]] = []
    seq = 0
    frames = 0
    open_sessions = 0

    def flush(before: str | None) -> None:
        nonlocal frames
        while heap and (before is None or heap[0][0] < before):
            _ts, _n, line = heapq.heappop(heap)
            out.write(orjson.dumps(line) + b"\n")
            frames += 1

    for s, tx, (start, end) in zip(sessions, tx_ids, wire_times, strict=True):
        start_t = epoch(s.start)
        flush(format_ts(start_t - _LEAD_S))
        lines: list[Line] = []
        version = versions.get(s.station)
        if version is None:
            version = versions[s.station] = station_version(s.station, options)
            lines.extend(_boot_lines(s.station, version, s.model, start_t - 120.0, ids))
        station = data.stations.get(s.station)
        kw = station.connector_kw(s.connector) if station else None
        rng = random.Random(f"{options.seed}|{s.dataset}|{s.key}|{s.source}")
        register_key = (s.station, s.connector)
        if register_key not in registers:
            base = random.Random(f"{options.seed}|register|{s.station}|{s.connector}")
            registers[register_key] = float(base.randint(1_000_000, 9_000_000))
        meter_start = registers[register_key] + s.meter_jump_wh
        is_open = s.end is None or s.energy_wh is None
        energy = 0.0 if is_open or s.energy_wh is None else s.energy_wh
        user = s.user if s.user is not None else f"session:{s.key}:{s.source}"
        plan = SessionPlan(
            station=s.station,
            ocpp=version,
            connector_id=s.connector if version == "1.6" else 1,
            evse_id=s.connector,
            token=derive_token(options.seed, s.dataset, user),
            transaction_id=tx,
            start=start,
            end=end,
            energy_wh=energy,
            meter_start_wh=meter_start,
            sample_interval_s=options.sample_interval_s,
            auth_status=s.auth_status,
            stop_reason="Local" if rng.random() < 0.7 else "EVDisconnected",
            max_power_w=s.max_power_w or (kw * 1000.0 if kw else None),
        )
        rendered = session_lines(plan, rng=rng, ids=ids)
        if is_open:
            rendered = _open_session(rendered)
            open_sessions += 1
        else:
            registers[register_key] = meter_start + round(energy)
            if s.stop_delta_wh:
                _shift_stop(rendered, round(s.stop_delta_wh))
        lines.extend(rendered)
        for line in lines:
            seq += 1
            heapq.heappush(heap, (line["ts"], seq, line))
    flush(None)
    oddities = find_oddities(sessions, data.stations, tx_ids)
    wire = {(s.key, s.source): tx for s, tx in zip(sessions, tx_ids, strict=True)}
    return RenderResult(frames, len(sessions), open_sessions, oddities, wire, versions)


def inventory_rows(data: DatasetImport, versions: dict[str, str]) -> Iterator[list[str]]:
    """Station rows, then one row per connector with its wire id (``N`` for 1.6, ``N/1`` for 2.0.1)."""
    for name in sorted(data.stations):
        st = data.stations[name]
        if name not in versions:
            continue  # a station of the location file without sessions
        common = [
            "" if st.latitude is None else f"{st.latitude:.6f}",
            "" if st.longitude is None else f"{st.longitude:.6f}",
        ]
        kw = st.max_kw
        count = str(max(1, len(st.connectors)))
        tail = [st.location_id or "", st.country or ""]
        yield [name, *common, "" if kw is None else f"{kw:g}", count, *tail, "", ""]
        for number in sorted(st.connectors):
            power = st.connectors[number]
            wire = str(number) if versions[name] == "1.6" else f"{number}/1"
            yield [name, *common, f"{power.max_kw:g}", count, *tail, wire, power.connector_type]


def write_inventory(data: DatasetImport, versions: dict[str, str], path: Path) -> int:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(INVENTORY_HEADER)
    rows = 0
    for row in inventory_rows(data, versions):
        writer.writerow(row)
        rows += 1
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return rows


def write_import(
    data: DatasetImport, out_dir: Path, options: RenderOptions, inputs: Sequence[Path]
) -> dict[str, Any]:
    """Write capture.jsonl, stations.csv, oddities.jsonl and import-report.json; return the report."""
    return write_import_full(data, out_dir, options, inputs)[0]


def write_import_full(
    data: DatasetImport, out_dir: Path, options: RenderOptions, inputs: Sequence[Path]
) -> tuple[dict[str, Any], RenderResult]:
    """:func:`write_import`, also returning the render result (transaction ids, versions, oddities)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "capture.jsonl").open("wb") as handle:
        result = render(data, handle, options)
    write_inventory(data, result.versions, out_dir / "stations.csv")
    with (out_dir / "oddities.jsonl").open("wb") as handle:
        for oddity in result.oddities:
            handle.write(orjson.dumps(oddity.to_json()) + b"\n")
    report: dict[str, Any] = {
        "dataset": data.dataset,
        "inputs": [p.name for p in inputs],
        "seed": options.seed,
        "ocpp": options.ocpp,
        "sample_interval_s": options.sample_interval_s,
        "rows_read": data.rows_read,
        "blank_rows": data.blank_rows,
        "header_rows": data.header_rows,
        "unparsable_rows": len(data.problems),
        "unparsable_examples": [str(p) for p in data.problems[:20]],
        "sessions": result.sessions,
        "open_sessions": result.open_sessions,
        "stations": len(result.versions),
        "stations_1_6": sum(1 for v in result.versions.values() if v == "1.6"),
        "frames": result.frames,
        "oddities": dict(sorted(Counter(o.kind for o in result.oddities).items())),
        "notes": data.notes,
    }
    (out_dir / "import-report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    log.info("datasets.import.written", dataset=data.dataset, sessions=result.sessions, frames=result.frames,
             unparsable=len(data.problems))  # fmt: skip
    return report, result
