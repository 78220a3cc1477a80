"""Fit the simulator's session distributions on the real public datasets; writes sim/fitted.json.

Usage: ``.venv/bin/python scripts/fit_distributions.py [DATASETS_DIR] [OUT_JSON]``
(defaults: ../shared/datasets relative to the project root, src/chargeguard/sim/fitted.json).

Per connector class it fits empirical quantiles of energy (kWh) and plug-in duration (minutes), their
Spearman rank correlation (the simulator couples them through a Gaussian copula), the arrival-hour histogram
on weekdays and weekends, and the share of zero-energy sessions; from the Dundee sessions with user ids it
fits driver habits (sessions per active day, share of a driver's sessions at their most used station).
Sources and licences:

* Dundee City Council, "Electric Vehicle Charging Sessions Dundee" (ChargePlace Scotland), OGL v3.0.
* Perth & Kinross Council, "Electric Vehicle Charging Station Usage", OGL v3.0.
* Sorensen, Lindberg, Sartori, Andresen, "Residential electric vehicle charging datasets from apartment
  buildings", Data in Brief 2021, Mendeley Data doi:10.17632/jbks2rcwyj, CC BY 4.0.
* DESL-EPFL "Level-3-EV-charging-dataset" (one DC fast station, Switzerland), MIT licence.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

PROBS = [0.005, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.995]
MAX_DURATION_MIN = 48 * 60


class Sessions:
    def __init__(self) -> None:
        self.energy: list[float] = []
        self.duration: list[float] = []
        self.hours_weekday: Counter[int] = Counter()
        self.hours_weekend: Counter[int] = Counter()
        self.zero = 0
        self.rows = 0
        self.skipped = 0

    def add(self, start: datetime, end: datetime | None, kwh: float | None) -> None:
        self.rows += 1
        if end is None or kwh is None:
            self.skipped += 1
            return
        minutes = (end - start).total_seconds() / 60.0
        if not 0 < minutes <= MAX_DURATION_MIN or kwh < 0:
            self.skipped += 1
            return
        (self.hours_weekend if start.weekday() >= 5 else self.hours_weekday)[start.hour] += 1
        if kwh == 0:
            self.zero += 1
            return
        self.energy.append(kwh)
        self.duration.append(minutes)


def quantiles(values: list[float]) -> list[float]:
    data = sorted(values)
    out = []
    for p in PROBS:
        pos = p * (len(data) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(data) - 1)
        out.append(round(data[lo] + (data[hi] - data[lo]) * (pos - lo), 3))
    return out


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2.0
        i = j + 1
    return result


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    n = len(ra)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return round(cov / math.sqrt(va * vb), 3)


def histogram(counter: Counter[int]) -> list[float]:
    total = sum(counter.values()) or 1
    return [round(counter[h] / total, 4) for h in range(24)]


def number(text: str) -> float | None:
    text = text.strip().replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None


def moment(text: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(text.strip(), fmt)  # noqa: DTZ007 - local wall time is what the data says
    except ValueError:
        return None


def scottish_class(model: str) -> str | None:
    text = model.lower()
    if ("rapid" in text and "semi" not in text) or "50kw" in text:
        return "dc50"
    if "22kw" in text or "semi-rapid" in text:
        return "ac22"
    if "7kw" in text or "7 kw" in text:
        return "ac7"
    return None


def read_scottish(
    path: Path, classes: dict[str, Sessions], users: dict[str, list[tuple[datetime, str]]]
) -> None:
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        col = {name: i for i, name in enumerate(header) if name}
        for row in reader:
            if len(row) < len(col) or row[col["Start Date"]] == "Start Date":
                continue
            model = next((f for f in row[col.get("Site", 0) :] if scottish_class(f)), "")
            kind = scottish_class(model)
            start = moment(row[col["Start Date"]] + " " + row[col["Start Time"]], "%d/%m/%Y %H:%M")
            if kind is None or start is None:
                continue
            end = moment(row[col["End Date"]] + " " + row[col["End Time"]], "%d/%m/%Y %H:%M")
            kwh = number(row[col["Total kWh"]])
            classes[kind].add(start, end, kwh)
            if "User ID" in col and row[col["User ID"]].strip():
                users[row[col["User ID"]].strip()].append((start, row[col["CP ID"]].strip()))


def read_trondheim(path: Path, sessions: Sessions) -> None:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle, delimiter=";"):
            start = moment(row["Start_plugin"], "%d.%m.%Y %H:%M")
            end = moment(row["End_plugout"], "%d.%m.%Y %H:%M")
            if start is not None:
                sessions.add(start, end, number(row["El_kWh"]))


def read_epfl(path: Path, sessions: Sessions) -> None:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            start = moment(row["Arrival"], "%Y-%m-%d %H:%M:%S")
            end = moment(row["Departure"], "%Y-%m-%d %H:%M:%S")
            wh = number(row["Energy (Wh)"])
            if start is not None:
                sessions.add(start, end, None if wh is None else wh / 1000.0)


def habits(users: dict[str, list[tuple[datetime, str]]]) -> dict[str, object]:
    per_day: list[float] = []
    top_share: list[float] = []
    stations: list[float] = []
    for visits in users.values():
        if len(visits) < 3:
            continue
        days = {v[0].date() for v in visits}
        span = (max(days) - min(days)).days + 1
        per_day.append(len(visits) / span)
        counts = Counter(v[1] for v in visits)
        top_share.append(counts.most_common(1)[0][1] / len(visits))
        stations.append(float(len(counts)))
    return {
        "drivers": len(per_day),
        "sessions_per_day_q": quantiles(per_day),
        "top_station_share_q": quantiles(top_share),
        "distinct_stations_q": quantiles(stations),
    }


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent / "shared" / "datasets"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else root / "src" / "chargeguard" / "sim" / "fitted.json"
    classes = {name: Sessions() for name in ("ac7", "ac22", "dc50", "dc150", "home")}
    users: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for name in (
        "charge-sessions-june-sept.csv",
        "cp-data-dec-mar-2018.csv",
        "cp-data-mar-may-2018.csv",
        "cpdata.csv",
    ):
        read_scottish(data / "scotland-dundee" / name, classes, users)
    for name in (
        "electricvehiclechargecorrected.csv",
        "sept17toaug18standardisedcorrected.csv",
        "sept18toaug19standardisedcorrected.csv",
    ):
        read_scottish(data / "scotland-perth-kinross" / name, classes, users)
    read_trondheim(
        data / "norway-residential-trondheim" / "Dataset 1_EV charging reports.csv", classes["home"]
    )
    read_epfl(data / "epfl-level3-dc-fast" / "Session_data.csv", classes["dc150"])
    fitted: dict[str, object] = {
        "probabilities": PROBS,
        "sources": {
            "ac7, ac22, dc50": "Dundee City Council EV charging sessions (OGL v3.0); "
            "Perth & Kinross Council EV charging station usage (OGL v3.0)",
            "home": "Sorensen et al., Residential EV charging datasets from apartment buildings, "
            "Data in Brief 2021, doi:10.17632/jbks2rcwyj (CC BY 4.0)",
            "dc150": "DESL-EPFL Level-3-EV-charging-dataset (MIT)",
            "habits": "Dundee City Council EV charging sessions June-Sept 2018, User ID column (OGL v3.0)",
        },
        "classes": {},
        "habits": habits(users),
    }
    for name, sessions in classes.items():
        fitted["classes"][name] = {  # type: ignore[index]
            "sessions": len(sessions.energy),
            "rows": sessions.rows,
            "skipped": sessions.skipped,
            "zero_energy_share": round(sessions.zero / max(1, sessions.zero + len(sessions.energy)), 4),
            "energy_kwh_q": quantiles(sessions.energy),
            "duration_min_q": quantiles(sessions.duration),
            "spearman_energy_duration": spearman(sessions.energy, sessions.duration),
            "arrival_hour_weekday": histogram(sessions.hours_weekday),
            "arrival_hour_weekend": histogram(sessions.hours_weekend),
        }
    out.write_text(json.dumps(fitted, indent=1) + "\n", encoding="utf-8")
    for name, sessions in classes.items():
        print(
            f"{name}: {len(sessions.energy)} sessions fitted, {sessions.zero} zero-energy,",
            f"{sessions.skipped} skipped",
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
