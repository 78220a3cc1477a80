"""Stream one partner's OCPI CDR or Session file into DuckDB: validate every record, pseudonymise tokens.

The file (JSON Lines, or a JSON array) is read by DuckDB itself - no Python object per record. Each record is
checked in SQL; a record that fails becomes an error row naming the file, its line (or array index), its id when
readable and the reason, and is left out of matching; nothing else is lost. Token uids are replaced by pseudonyms
before the table the matcher sees is built: only the distinct uids pass through Python (the Pseudonymiser),
the raw lines are dropped right after, and DuckDB is kept from spilling to disk (``temp_directory`` off), so a raw
token is never written anywhere.
"""

# ruff: noqa: S608 - SQL is built from our own identifiers; file names go in as quoted literals or parameters
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from chargeguard.errors import InputError
from chargeguard.vault.pseudonyms import Pseudonymiser

ObjectKind = Literal["cdr", "session"]

# extraction paths, in the order of the columns below
_PATHS: dict[str, tuple[str, ...]] = {
    "cdr": (
        "$.country_code", "$.party_id", "$.id", "$.cdr_token.uid", "$.cdr_token.country_code",
        "$.cdr_token.party_id", "$.cdr_location.evse_uid", "$.start_date_time", "$.end_date_time",
        "$.total_energy", "$.total_cost.excl_vat", "$.currency", "$.credit",
    ),
    "session": (
        "$.country_code", "$.party_id", "$.id", "$.cdr_token.uid", "$.cdr_token.country_code",
        "$.cdr_token.party_id", "$.evse_uid", "$.start_date_time", "$.end_date_time",
        "$.kwh", "$.total_cost.excl_vat", "$.currency", "$.status",
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LoadOptions:
    max_kwh: float = 1000.0  # a record claiming more energy than this is absurd (no EV battery holds it)
    max_cost: float = 100_000.0


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that never spills to disk (raw tokens pass through it before pseudonymisation)."""
    con = duckdb.connect(":memory:")
    con.execute("SET temp_directory = ''")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # OCPI DateTimes without an offset are UTC
    return con


def _source(path: Path) -> tuple[str, str]:
    """The DuckDB table function reading ``path`` and the word naming a position in it (line / record)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).lstrip()[:1]
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from exc
    literal = "'" + str(path).replace("'", "''") + "'"
    if head == b"[":
        return f"SELECT json AS line FROM read_json_objects({literal}, format='array')", "record"
    return (
        f"SELECT line FROM read_csv({literal}, columns={{'line': 'VARCHAR'}}, header=false, delim=chr(1), "
        "quote='', escape='', auto_detect=false, max_line_size=67108864)",
        "line",
    )


def _fast_columns(kind: ObjectKind) -> tuple[str, str]:
    """``read_json`` columns (every leaf VARCHAR) and the list expression in ``_PATHS`` order, for the fast path."""
    tree: dict[str, dict[str, None] | None] = {}
    leaves: list[str] = []
    for p in _PATHS[kind]:
        parts = p[2:].split(".")
        if len(parts) == 1:
            tree[parts[0]] = None
        else:
            sub = tree.setdefault(parts[0], {})
            assert sub is not None
            sub[parts[1]] = None
        leaves.append(".".join(f'"{x}"' for x in parts))
    specs = []
    for name, sub in tree.items():
        if sub is None:
            specs.append(f"'{name}': 'VARCHAR'")
        else:
            fields = ", ".join(f"{leaf} VARCHAR" for leaf in sub)
            specs.append(f"'{name}': 'STRUCT({fields})'")
    return "{" + ", ".join(specs) + "}", ", ".join(
        f"{leaf} AS f{i}" for i, leaf in enumerate(leaves, start=1)
    )


def _lines(path: Path) -> int | None:
    """Number of lines in a JSON Lines file, or None when it has blank lines (then only the slow path is exact)."""
    count = 0
    last = b"\n"
    previous_ended = True
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            if (previous_ended and chunk[:1] == b"\n") or b"\n\n" in chunk:
                return None
            count += chunk.count(b"\n")
            last = chunk[-1:]
            previous_ended = last == b"\n"
    return count + (0 if last == b"\n" else 1)


def _extract(
    con: duckdb.DuckDBPyConnection, side: str, path: Path, kind: ObjectKind, query: str, unit: str
) -> None:
    """Table ``e_<side>``: idx, ok (a JSON object), f1..fN (the ``_PATHS`` values as text), blank.

    Fast path for JSON Lines: DuckDB's own ``read_json`` with typed columns - used only when it returns every line
    of the file (no blank, malformed or oddly shaped line), so positions stay exact; lines it could read only in
    part are checked again as text. Otherwise (or for arrays) each line is read as text and its fields extracted
    one by one, which names every bad line.
    """
    literal = "'" + str(path).replace("'", "''") + "'"
    n = len(_PATHS[kind])
    if unit == "line":
        expected = _lines(path)
        columns, leaves = _fast_columns(kind)
        if expected is not None:
            con.execute(f"""
                CREATE TEMP TABLE e_{side} AS
                SELECT row_number() OVER () - 1 AS idx, true AS ok, {leaves}, false AS blank
                FROM read_json({literal}, format='newline_delimited', ignore_errors=true, columns={columns},
                               maximum_object_size=67108864)
            """)
            got = con.execute(f"SELECT count(*) FROM e_{side}").fetchone()
            if got is not None and got[0] == expected:
                suspicious = (
                    f"SELECT idx FROM e_{side} WHERE f1 IS NULL OR f2 IS NULL OR f3 IS NULL OR f4 IS NULL "
                    "OR f7 IS NULL OR f8 IS NULL OR f10 IS NULL"
                )
                if con.execute(f"SELECT count(*) FROM ({suspicious})").fetchone() != (0,):
                    con.execute(f"""
                        UPDATE e_{side} SET ok = false WHERE idx IN (
                            SELECT idx FROM (SELECT row_number() OVER () - 1 AS idx, line FROM ({query}))
                            WHERE idx IN ({suspicious}) AND NOT coalesce(json_valid(line), false))
                    """)
                return
            con.execute(f"DROP TABLE e_{side}")
    paths = "[" + ", ".join(f"'{p}'" for p in _PATHS[kind]) + "]"
    # read, number and extract in one pass (the raw lines are never materialised), then spread the list into
    # columns (referencing the extraction once per field would evaluate it once per field)
    con.execute(f"""
        CREATE TEMP TABLE s_{side} AS
        SELECT row_number() OVER () - 1 AS idx, line IS NULL AS blank,
               CASE WHEN starts_with(ltrim(line), '{{') THEN TRY(json_extract_string(line, {paths})) END AS v
        FROM ({query})
    """)
    spread = ", ".join(f"v[{i}] AS f{i}" for i in range(1, n + 1))
    con.execute(
        f"CREATE TEMP TABLE e_{side} AS SELECT idx, v IS NOT NULL AS ok, {spread}, blank FROM s_{side}"
    )
    con.execute(f"DROP TABLE s_{side}")


def load(
    con: duckdb.DuckDBPyConnection,
    side: str,
    path: Path,
    kind: ObjectKind,
    pseudonymiser: Pseudonymiser,
    options: LoadOptions | None = None,
) -> None:
    """Create tables ``<side>`` (good records) and append to ``errors`` (side, file, position, id, reason)."""
    options = options or LoadOptions()
    query, unit = _source(path)
    try:
        _extract(con, side, path, kind, query, unit)
    except duckdb.Error as exc:
        raise InputError(
            # DuckDB's message may quote the offending line (raw tokens): only its class is shown
            f"cannot read as OCPI {kind}s ({type(exc).__name__}; e.g. a line over 64 MiB)",
            source=str(path),
        ) from None
    con.execute(f"""
        CREATE TEMP VIEW x_{side} AS
        SELECT idx, ok, f1 AS cc, f2 AS pid, f3 AS id, f4 AS uid, f5 AS tcc,
               f6 AS tpid, f7 AS evse, TRY_CAST(f8 AS TIMESTAMPTZ) AS start_ts,
               TRY_CAST(f9 AS TIMESTAMPTZ) AS end_ts, TRY_CAST(f10 AS DOUBLE) AS energy,
               TRY_CAST(f11 AS DECIMAL(18, 4)) AS cost, f12 AS currency,
               coalesce(TRY_CAST(f13 AS BOOLEAN), false) AS credit
        FROM e_{side} WHERE NOT blank
    """)
    con.execute(f"""
        CREATE TEMP TABLE v_{side} AS
        SELECT *, CASE
            WHEN NOT ok THEN 'not a JSON object'
            WHEN cc IS NULL OR pid IS NULL OR id IS NULL THEN 'missing country_code, party_id or id'
            WHEN length(cc) <> 2 OR length(pid) <> 3 THEN 'country_code must have 2 and party_id 3 characters'
            WHEN uid IS NULL OR tcc IS NULL OR tpid IS NULL THEN 'missing cdr_token uid, country_code or party_id'
            WHEN uid = '' OR contains(uid, chr(31)) THEN 'token uid empty or with a unit separator'
            WHEN evse IS NULL THEN 'missing EVSE uid'
            WHEN start_ts IS NULL THEN 'missing or unreadable start_date_time'
            WHEN energy IS NULL THEN 'missing or non-numeric energy'
            WHEN energy < 0 THEN 'negative energy'
            WHEN energy > {options.max_kwh} THEN 'absurd energy (over {options.max_kwh:g} kWh)'
            WHEN cost IS NULL THEN 'missing or non-numeric total_cost.excl_vat'
            WHEN cost < 0 AND NOT credit THEN 'negative cost on a CDR that is not a credit'
            WHEN abs(cost) > {options.max_cost} THEN 'absurd cost (over {options.max_cost:g})'
            WHEN currency IS NULL OR length(currency) <> 3 OR NOT regexp_full_match(currency, '[A-Z]{{3}}')
                THEN 'currency is not ISO 4217'
            WHEN end_ts IS NOT NULL AND end_ts < start_ts THEN 'ends before it starts'
        END AS reason,
        upper(cc) || '*' || upper(pid) || '*' || id AS key
        FROM x_{side}
    """)
    con.execute(f"DROP VIEW x_{side}")
    con.execute(f"DROP TABLE e_{side}")
    # duplicate ids (unique per country_code + party_id): the first record wins, later ones are errors
    con.execute(f"""
        CREATE TEMP TABLE dup_{side} AS
        SELECT v.idx, 'duplicate id (first seen at {unit} ' || (f.first_idx + 1) || ')' AS why
        FROM v_{side} v JOIN (SELECT key, min(idx) AS first_idx FROM v_{side} WHERE reason IS NULL
                              GROUP BY key HAVING count(*) > 1) f USING (key)
        WHERE v.reason IS NULL AND v.idx > f.first_idx
    """)
    con.execute(
        "CREATE TABLE IF NOT EXISTS errors (side VARCHAR, file VARCHAR, position VARCHAR, id VARCHAR, reason VARCHAR)"
    )
    con.execute(
        f"INSERT INTO errors SELECT ?, ?, '{unit} ' || (idx + 1), key, why FROM ("
        f"SELECT idx, key, reason AS why FROM v_{side} WHERE reason IS NOT NULL "
        f"UNION ALL SELECT d.idx, v.key, d.why FROM dup_{side} d JOIN v_{side} v USING (idx)) ORDER BY idx",
        [side, str(path)],
    )
    good = (
        f"(SELECT * FROM v_{side} v WHERE v.reason IS NULL "
        f"AND NOT EXISTS (SELECT 1 FROM dup_{side} d WHERE d.idx = v.idx))"
    )
    # only the distinct uids pass through Python (once each); they go back as one separated string, which DuckDB
    # splits - far cheaper than a list parameter (uids with control characters were rejected above)
    uids = [row[0] for row in con.execute(f"SELECT DISTINCT uid FROM {good}").fetchall()]
    refs = [pseudonymiser.pseudonymise(u) for u in uids]
    con.execute(
        f"CREATE TEMP TABLE tok_{side} AS SELECT unnest(string_split(?, chr(31))) AS uid, "
        "unnest(string_split(?, chr(31))) AS token_ref WHERE ? > 0",
        ["\x1f".join(uids), "\x1f".join(refs), len(uids)],
    )
    con.execute(f"""
        CREATE TABLE {side} AS
        SELECT d.idx, d.key, upper(d.cc) || '*' || upper(d.pid) AS party,
               upper(d.tcc) || '*' || upper(d.tpid) AS token_party, t.token_ref, d.evse,
               timezone('UTC', d.start_ts) AS start_ts, timezone('UTC', d.end_ts) AS end_ts,
               d.energy, d.cost, d.currency, d.credit
        FROM {good} d JOIN tok_{side} t USING (uid)
    """)
    con.execute(f"DROP TABLE v_{side}")
    con.execute(f"DROP TABLE dup_{side}")
    con.execute(f"DROP TABLE tok_{side}")
