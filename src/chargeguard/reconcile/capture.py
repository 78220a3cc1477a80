"""``reconcile --capture``: the OCPP transactions of a capture as a DuckDB table, and CPO CDRs with none behind them.

The capture goes through the ordinary scan pipeline (validation, transaction assembly, pseudonymisation) with no
detectors; each assembled transaction becomes a row (station, transaction id, start, end, kWh). A CPO CDR is
*uncovered* when its EVSE uid is a station of the capture (the ``evse_uid`` station mapping, see docs/ocpi.md) and
no transaction on that station overlaps its start..end window widened by ``slack_s``. CDRs on stations the capture
does not show are not judged.
"""

# ruff: noqa: S608 - SQL is built from our own identifiers and numbers
from __future__ import annotations

from datetime import UTC
from pathlib import Path

from chargeguard.events import Event, TransactionEnded
from chargeguard.pipeline import ScanPipeline
from chargeguard.reconcile.match import Reconciliation
from chargeguard.settings import Settings
from chargeguard.vault.pseudonyms import Pseudonymiser


def load_capture(
    result: Reconciliation, captures: list[Path], pseudonymiser: Pseudonymiser, settings: Settings
) -> int:
    """Scan the captures into table ``ocpp``; returns the number of transactions."""
    rows: list[tuple[str, str, str, str, float | None]] = []

    def collect(event: Event) -> None:
        if isinstance(event, TransactionEnded):
            start = (event.started_at or event.at).astimezone(UTC).replace(tzinfo=None)
            end = event.at.astimezone(UTC).replace(tzinfo=None)
            kwh = None if event.energy_wh is None else event.energy_wh / 1000.0
            rows.append((event.station, event.transaction_id, start.isoformat(), end.isoformat(), kwh))

    pipeline = ScanPipeline(settings, pseudonymiser, detectors=[], on_event=collect)
    pipeline.run([str(p) for p in captures])
    con = result.con
    con.execute(
        "CREATE TABLE ocpp (station VARCHAR, transaction_id VARCHAR, start_ts TIMESTAMP, end_ts TIMESTAMP, kwh DOUBLE)"
    )
    if rows:
        con.executemany("INSERT INTO ocpp VALUES (?, ?, CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), ?)", rows)
    return len(rows)


def uncovered(result: Reconciliation, slack_s: float = 600.0) -> int:
    """Create table ``uncovered`` (CPO CDRs with no OCPP transaction behind them); returns its size."""
    con = result.con
    con.execute(f"""
        CREATE TABLE uncovered AS
        SELECT c.key, c.party AS cpo_party, c.token_party AS emsp_party, c.token_ref, c.evse,
               strftime(c.start_ts, '%Y-%m-%dT%H:%M:%SZ') AS start, c.energy AS kwh, c.cost, c.currency
        FROM cpo c
        WHERE c.evse IN (SELECT DISTINCT station FROM ocpp)
          AND NOT EXISTS (
              SELECT 1 FROM ocpp o WHERE o.station = c.evse
                AND o.start_ts <= c.end_ts + INTERVAL ({slack_s}) SECOND
                AND c.start_ts - INTERVAL ({slack_s}) SECOND <= o.end_ts)
        ORDER BY c.idx
    """)
    row = con.execute("SELECT count(*) FROM uncovered").fetchone()
    count = int(row[0]) if row else 0
    result.counts["cpo_without_ocpp_transaction"] = count
    return count
