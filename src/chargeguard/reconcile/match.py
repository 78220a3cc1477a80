"""Match the CPO's and the eMSP's records in DuckDB; classify matched, disputed and unmatched; amounts at stake.

Matching, in two passes:

1. by id within the issuing party: ``country_code*party_id*id`` equal on both sides;
2. of what is left, by token pseudonym + EVSE uid + start time within ``start_tolerance_s`` + energy within
   tolerance, one-to-one (each record takes its nearest start; ties by position).

A matched pair is *disputed* when the currencies differ (amounts then cannot be compared; the CPO's amount is at
stake), the costs differ by more than ``money_tolerance`` (the difference is at stake), or the energies differ
beyond tolerance (the share of the CPO's cost for the disputed energy is at stake). A record on one side only is at
stake in full. Amounts are summed per currency - never across currencies - in total, per CPO party and per eMSP
(token) party.
"""

# ruff: noqa: S608 - SQL is built from our own identifiers and numbers
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from chargeguard.reconcile.load import LoadOptions, ObjectKind, connect, finish, stage
from chargeguard.vault.pseudonyms import Pseudonymiser


@dataclass(frozen=True, slots=True)
class MatchOptions:
    start_tolerance_s: float = 300.0
    energy_tolerance_kwh: float = 0.1
    energy_tolerance_rel: float = 0.01
    money_tolerance: float = 0.01


@dataclass(slots=True)
class Reconciliation:
    """The outcome; ``con`` holds the tables ``pairs``, ``disputes``, ``unmatched`` and ``errors`` for export."""

    con: duckdb.DuckDBPyConnection
    cpo_file: Path
    emsp_file: Path
    counts: dict[str, int] = field(default_factory=dict)
    stakes: list[tuple[str, str, str, int, Decimal]] = field(
        default_factory=list
    )  # currency, scope, party, n, amount

    def errors(self, limit: int | None = None) -> list[tuple[Any, ...]]:
        sql = "SELECT side, file, position, id, reason FROM errors ORDER BY side, file, position"
        return self.con.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()

    def disputes(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM disputes ORDER BY stake DESC, cpo_key"
        cur = self.con.execute(sql + (f" LIMIT {int(limit)}" if limit else ""))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def unmatched(self, side: str, limit: int | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT * FROM unmatched WHERE side = '{side}' ORDER BY stake DESC, key"
        cur = self.con.execute(sql + (f" LIMIT {int(limit)}" if limit else ""))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _energy_ok(a: str, b: str, o: MatchOptions) -> str:
    return (
        f"abs({a}.energy - {b}.energy) <= greatest({o.energy_tolerance_kwh}, "
        f"{o.energy_tolerance_rel} * greatest({a}.energy, {b}.energy))"
    )


def _disputes(o: MatchOptions, how: str, source: str) -> str:
    """The dispute rows of the pairs ``source`` yields as ``c`` (CPO) and ``e`` (eMSP), matched as ``how`` says.

    Filtered first (a pair is disputed when any reason holds), so the text columns are built for those pairs only.
    """
    return f"""
        SELECT {how} AS how, c.key AS cpo_key, e.key AS emsp_key, c.party AS cpo_party, c.token_party AS emsp_party,
               c.token_ref, c.evse, strftime(c.start_ts, '%Y-%m-%dT%H:%M:%SZ') AS start,
               c.energy AS cpo_kwh, e.energy AS emsp_kwh, c.cost AS cpo_cost, e.cost AS emsp_cost,
               c.currency AS cpo_currency, e.currency AS emsp_currency, c.idx AS cpo_idx, e.idx AS emsp_idx,
               concat_ws(',',
                   CASE WHEN c.currency <> e.currency THEN 'currency' END,
                   CASE WHEN c.currency = e.currency AND abs(c.cost - e.cost) > {o.money_tolerance}
                        THEN 'price' END,
                   CASE WHEN NOT ({_energy_ok("c", "e", o)}) THEN 'energy' END) AS reasons,
               CASE WHEN c.currency <> e.currency THEN abs(c.cost)
                    WHEN abs(c.cost - e.cost) > {o.money_tolerance} THEN abs(c.cost - e.cost)
                    WHEN c.energy <> 0 THEN round(abs(c.cost) * abs(c.energy - e.energy) / abs(c.energy), 4)
                    ELSE 0 END::DECIMAL(18, 4) AS stake,
               c.currency AS currency
        FROM {source}
        WHERE c.currency <> e.currency OR abs(c.cost - e.cost) > {o.money_tolerance}
              OR NOT ({_energy_ok("c", "e", o)})
    """


def _unmatched(side: str, table: str) -> str:
    return f"""
        SELECT '{side}' AS side, key, party AS cpo_party, token_party AS emsp_party, token_ref, evse,
               strftime(start_ts, '%Y-%m-%dT%H:%M:%SZ') AS start, energy AS kwh, cost, currency,
               abs(cost)::DECIMAL(18, 4) AS stake, idx
        FROM {table}
    """


def match(con: duckdb.DuckDBPyConnection, options: MatchOptions) -> None:
    """Build ``pairs``, ``disputes`` and ``unmatched`` from the tables ``cpo`` and ``emsp``.

    The one join of both sides on the id gives the id pairs and their disputes; what is left on each side is kept
    aside once (few records), for the second pass and the unmatched records.
    """
    o = options
    con.execute(
        "CREATE TABLE pairs AS SELECT c.idx AS cidx, e.idx AS eidx, 'id' AS how FROM cpo c JOIN emsp e USING (key)"
    )
    con.execute("CREATE TABLE disputes AS " + _disputes(o, "'id'", "cpo c JOIN emsp e USING (key)"))
    con.execute("CREATE TEMP TABLE cu AS SELECT * FROM cpo ANTI JOIN pairs p ON cpo.idx = p.cidx")
    con.execute("CREATE TEMP TABLE eu AS SELECT * FROM emsp ANTI JOIN pairs p ON emsp.idx = p.eidx")
    con.execute(f"""
        CREATE TEMP TABLE fuzzy AS
        WITH cand AS (
                SELECT c.idx AS cidx, e.idx AS eidx, abs(epoch(c.start_ts) - epoch(e.start_ts)) AS dt
                FROM cu c JOIN eu e ON c.token_ref = e.token_ref AND c.evse = e.evse
                WHERE abs(epoch(c.start_ts) - epoch(e.start_ts)) <= {o.start_tolerance_s} AND {_energy_ok("c", "e", o)}
                  AND c.credit = e.credit
             ),
             best AS (SELECT * FROM cand QUALIFY row_number() OVER (PARTITION BY cidx ORDER BY dt, eidx) = 1)
        SELECT cidx, eidx, 'token+evse+start+energy' AS how FROM best
        QUALIFY row_number() OVER (PARTITION BY eidx ORDER BY dt, cidx) = 1
    """)
    con.execute("INSERT INTO pairs SELECT * FROM fuzzy")
    con.execute(
        "INSERT INTO disputes "
        + _disputes(o, "p.how", "fuzzy p JOIN cu c ON c.idx = p.cidx JOIN eu e ON e.idx = p.eidx")
    )
    con.execute(f"""
        CREATE TABLE unmatched AS
        {_unmatched("cpo", "cu ANTI JOIN fuzzy p ON cu.idx = p.cidx")}
        UNION ALL
        {_unmatched("emsp", "eu ANTI JOIN fuzzy p ON eu.idx = p.eidx")}
    """)
    for table in ("cu", "eu", "fuzzy"):
        con.execute(f"DROP TABLE {table}")


def _stakes(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, int, Decimal]]:
    rows = con.execute("""
        WITH s AS (
            SELECT currency, cpo_party, emsp_party, stake FROM disputes
            UNION ALL SELECT currency, cpo_party, emsp_party, stake FROM unmatched
        )
        SELECT currency, 'total' AS scope, '' AS party, count(*), sum(stake) FROM s GROUP BY currency
        UNION ALL SELECT currency, 'cpo', cpo_party, count(*), sum(stake) FROM s GROUP BY currency, cpo_party
        UNION ALL SELECT currency, 'emsp', emsp_party, count(*), sum(stake) FROM s GROUP BY currency, emsp_party
        ORDER BY 1, 2 DESC, 5 DESC, 3
    """).fetchall()
    return [(str(r[0]), str(r[1]), str(r[2]), int(r[3]), Decimal(r[4])) for r in rows]


def reconcile(
    cpo_file: Path,
    emsp_file: Path,
    pseudonymiser: Pseudonymiser,
    *,
    kind: ObjectKind = "cdr",
    load_options: LoadOptions | None = None,
    options: MatchOptions | None = None,
) -> Reconciliation:
    """Load both files, match them and total what is at stake (see the module docstring)."""
    con = connect()
    stage(con, "cpo", cpo_file, kind, load_options)
    stage(con, "emsp", emsp_file, kind, load_options)
    finish(con, ("cpo", "emsp"), pseudonymiser)
    match(con, options or MatchOptions())
    counts: dict[str, int] = {}
    for name, sql in (
        ("cpo_records", "SELECT count(*) FROM cpo"),
        ("emsp_records", "SELECT count(*) FROM emsp"),
        ("matched_by_id", "SELECT count(*) FROM pairs WHERE how = 'id'"),
        ("matched_fuzzy", "SELECT count(*) FROM pairs WHERE how <> 'id'"),
        ("disputed", "SELECT count(*) FROM disputes"),
        ("disputed_price", "SELECT count(*) FROM disputes WHERE reasons LIKE '%price%'"),
        ("disputed_energy", "SELECT count(*) FROM disputes WHERE reasons LIKE '%energy%'"),
        ("disputed_currency", "SELECT count(*) FROM disputes WHERE reasons LIKE '%currency%'"),
        ("unmatched_cpo", "SELECT count(*) FROM unmatched WHERE side = 'cpo'"),
        ("unmatched_emsp", "SELECT count(*) FROM unmatched WHERE side = 'emsp'"),
        ("errors_cpo", "SELECT count(*) FROM errors WHERE side = 'cpo'"),
        ("errors_emsp", "SELECT count(*) FROM errors WHERE side = 'emsp'"),
    ):
        row = con.execute(sql).fetchone()
        counts[name] = int(row[0]) if row else 0
    return Reconciliation(con, cpo_file, emsp_file, counts, _stakes(con))
