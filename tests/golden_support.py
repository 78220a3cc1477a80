"""Shared by tests/test_golden.py and scripts/regen-golden: golden inputs and the stable view of an alert."""

from __future__ import annotations

from pathlib import Path

import orjson

from chargeguard.cli.demo import write_scenario
from chargeguard.events import Alert
from chargeguard.inventory import load_inventory
from chargeguard.pipeline import ScanPipeline
from chargeguard.settings import Settings
from chargeguard.sources.timeparse import format_rfc3339
from chargeguard.vault.pseudonyms import Pseudonymiser

GOLDEN = Path(__file__).resolve().parent / "golden"
KEY = {1: bytes(range(32))}


def write_inputs(folder: Path) -> tuple[Path, Path]:
    return write_scenario(folder, 7)


def stable_view(alert: Alert) -> str:
    """What a golden file pins: everything but free-text wording and evidence details."""
    return orjson.dumps(
        {
            "id": alert.id,
            "kind": alert.kind,
            "severity": alert.severity.label,
            "ts": format_rfc3339(alert.ts),
            "last_ts": format_rfc3339(alert.last_ts) if alert.last_ts else None,
            "stations": list(alert.stations),
            "transactions": list(alert.transactions),
            "token_ref": alert.token_ref,
            "count": alert.count,
        }
    ).decode()


def golden_alerts(capture: Path, stations: Path) -> list[str]:
    alerts: list[Alert] = []
    pipeline = ScanPipeline(
        Settings(), Pseudonymiser(KEY, 1), inventory=load_inventory(stations), on_close=alerts.append
    )
    pipeline.run([str(capture)])
    return sorted(stable_view(a) for a in alerts)
