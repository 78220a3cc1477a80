"""Stream partners' OCPI CDR or Session files into DuckDB: validate every record in bulk, pseudonymise tokens.

A file (JSON Lines, or a JSON array) is read by DuckDB itself - no Python object per record. Every record is
checked in one SQL pass; a record that fails becomes an error row naming the file, its line (or array index), its
id when readable and the reason, and is left out of matching; nothing else is lost. Token uids are replaced by
pseudonyms before the tables the matcher sees are built: only the distinct uids of both files pass through Python
(the Pseudonymiser, once each), the staging tables holding raw uids are dropped right after, and DuckDB is kept from
spilling to disk (``temp_directory`` off), so a raw token is never written anywhere.

Use: :func:`stage` each file, then :func:`finish` (or :func:`load` for a single file).
"""

# ruff: noqa: S608 - SQL is built from our own identifiers; file names go in as quoted literals or parameters
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import orjson

from chargeguard.errors import InputError
from chargeguard.vault.pseudonyms import Pseudonymiser

ObjectKind = Literal["cdr", "session"]

# the source columns every reading path yields (text; the fast path reads the DateTimes typed), and their OCPI paths
_NAMES = ("cc", "pid", "id", "uid", "tcc", "tpid", "evse", "start_s", "end_s", "energy_s", "cost_s", "currency",
          "flag_s")  # fmt: skip
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
_TYPED = {"start_date_time": "TIMESTAMPTZ", "end_date_time": "TIMESTAMPTZ"}  # read_json types other than text
_CHUNK = 1 << 24
_MAX_LINE = 1 << 26  # 64 MiB: DuckDB's maximum_object_size / max_line_size for one record
_MISSING_ID = "missing country_code, party_id or id"


@dataclass(frozen=True, slots=True)
class LoadOptions:
    max_kwh: float = 1000.0  # a record claiming more energy than this is absurd (no EV battery holds it)
    max_cost: float = 100_000.0


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that never spills to disk (raw tokens pass through it before pseudonymisation)."""
    con = duckdb.connect(":memory:")
    con.execute("SET temp_directory = ''")
    con.execute("SET preserve_insertion_order = true")  # a staging table's rowid is the position in the file
    con.execute("SET TimeZone = 'UTC'")  # OCPI DateTimes without an offset are UTC
    con.execute("SET enable_progress_bar = false")
    return con


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _is_array(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4096).lstrip()[:1] == b"["
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from exc


def _skip_lines(buf: bytes, pos: int, k: int, width: float) -> int:
    """Where the line ``k`` lines after the one starting at ``pos`` starts, or -1 when ``buf`` ends before.

    Jumps ``k * width`` bytes, counts the newlines jumped over, then steps over the few it missed or overshot.
    """
    if k <= 0:
        return pos
    guess = min(len(buf), pos + int(k * width))
    seen = buf.count(b"\n", pos, guess)
    if seen >= k:  # the k-th newline is before the guess: step back over the extra ones
        end = guess
        for _ in range(seen - k + 1):
            end = buf.rfind(b"\n", pos, end)
        return end + 1
    at = guess
    for _ in range(k - seen):
        nl = buf.find(b"\n", at)
        if nl < 0:
            return -1
        at = nl + 1
    return at


def _scan(path: Path, wanted: Iterable[int], *, count: bool) -> tuple[int | None, dict[int, bytes]]:
    """The lines at the given 0-based positions of a file, and (``count``) its number of lines.

    One pass in chunks, never the whole file at once; without ``count`` it stops after the last wanted line. A
    last line without its newline counts.
    """
    targets = sorted(set(wanted), reverse=True)
    found: dict[int, bytes] = {}
    line = 0  # index of the line in progress at the start of the next chunk
    carry = b""  # what was read of that line, when it is wanted
    last = b"\n"
    with path.open("rb") as fh:
        while (targets or count) and (chunk := fh.read(_CHUNK)):
            ends = chunk.count(b"\n")
            last = chunk[-1:]
            if not targets or line + ends < targets[-1]:  # the next wanted line starts after this chunk
                line += ends
                continue
            last_line = line + ends  # the line in progress at the end of this chunk
            buf = carry + chunk if carry else chunk
            width = len(buf) / max(ends, 1)  # mean line length, to jump near a wanted line
            pos = 0  # start of line ``line`` in buf
            while targets:
                start = _skip_lines(buf, pos, targets[-1] - line, width)
                if start < 0:
                    break
                pos, line = start, targets[-1]
                nl = buf.find(b"\n", pos)
                if nl < 0:  # the wanted line goes on in the next chunk
                    break
                found[targets.pop()] = buf[pos:nl]
                pos, line = nl + 1, line + 1
            line = last_line
            carry = buf[buf.rfind(b"\n") + 1 :] if targets and line == targets[-1] else b""
    if targets and line == targets[-1] and carry:
        found[targets.pop()] = carry
    return (line + (0 if last == b"\n" else 1) if count else None), found


def lines_at(path: Path, wanted: Iterable[int]) -> dict[int, bytes]:
    """The lines at the given 0-based positions of a file."""
    return _scan(path, wanted, count=False)[1]


def _object(raw: bytes) -> dict[str, object] | None:
    """``raw`` as a JSON object, or None when it is not one."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _fast_source(kind: ObjectKind, literal: str) -> str:
    """A query of the ``_NAMES`` columns through DuckDB's typed ``read_json``.

    Every leaf is read as text except the two DateTimes, which the reader parses itself exactly as ``TRY_CAST``
    would (a value it cannot read becomes NULL; tested), without building their strings first.
    """
    tree: dict[str, list[str]] = {}
    leaves: list[str] = []
    for p in _PATHS[kind]:
        parts = p[2:].split(".")
        tree.setdefault(parts[0], [])
        if len(parts) > 1:
            tree[parts[0]].append(parts[1])
        leaves.append(".".join(f'"{x}"' for x in parts))
    specs = ", ".join(
        f"'{name}': 'STRUCT({', '.join(f'{leaf} VARCHAR' for leaf in sub)})'"
        if sub
        else f"'{name}': '{_TYPED.get(name, 'VARCHAR')}'"
        for name, sub in tree.items()
    )
    columns = ", ".join(f"{leaf} AS {name}" for leaf, name in zip(leaves, _NAMES, strict=True))
    return (
        f"SELECT false AS blank, true AS ok, {columns} "
        f"FROM read_json({literal}, format='newline_delimited', ignore_errors=true, columns={{{specs}}}, "
        f"maximum_object_size={_MAX_LINE})"
    )


def _slow_source(con: duckdb.DuckDBPyConnection, side: str, kind: ObjectKind, path: Path, array: bool) -> str:
    """Read each line (or array element) as text and extract its fields: exact positions for any file.

    Creates ``s_<side>``; read, number and extract happen in one pass (the raw lines are never materialised),
    then the list is spread into columns (referencing the extraction once per field would evaluate it once per
    field).
    """
    literal = _literal(path)
    if array:
        query = f"SELECT json AS line FROM read_json_objects({literal}, format='array')"
    else:
        query = (
            f"SELECT line FROM read_csv({literal}, columns={{'line': 'VARCHAR'}}, header=false, delim=chr(1), "
            f"quote='', escape='', auto_detect=false, max_line_size={_MAX_LINE})"
        )
    paths = "[" + ", ".join(f"'{p}'" for p in _PATHS[kind]) + "]"
    con.execute(f"""
        CREATE TEMP TABLE s_{side} AS
        SELECT line IS NULL OR trim(line, ' \t\r') = '' AS blank,
               CASE WHEN starts_with(ltrim(line), '{{') THEN TRY(json_extract_string(line, {paths})) END AS v
        FROM ({query})
    """)
    spread = ", ".join(f"v[{i}] AS {name}" for i, name in enumerate(_NAMES, start=1))
    return f"SELECT blank, v IS NOT NULL AS ok, {spread} FROM s_{side}"


def _validated(side: str, source: str, kind: ObjectKind, options: LoadOptions) -> str:
    """``CREATE`` of ``v_<side>``: every record typed, with its ``reason`` (NULL when good) and its keys.

    Its ``rowid`` is the position in the file (``preserve_insertion_order``; no window, which would serialise the
    read): an empty line stays as a row whose reason is ``''``.
    """
    credit = "coalesce(TRY_CAST(flag_s AS BOOLEAN), false)" if kind == "cdr" else "false"
    return f"""
        CREATE TEMP TABLE v_{side} AS
        SELECT CASE
            WHEN blank THEN ''
            WHEN NOT ok THEN 'not a JSON object'
            WHEN cc IS NULL OR pid IS NULL OR id IS NULL THEN '{_MISSING_ID}'
            WHEN length(cc) <> 2 OR length(pid) <> 3 THEN 'country_code must have 2 and party_id 3 characters'
            WHEN uid IS NULL OR tcc IS NULL OR tpid IS NULL THEN 'missing cdr_token uid, country_code or party_id'
            WHEN uid = '' OR contains(uid, chr(31)) THEN 'token uid empty or with a unit separator'
            WHEN evse IS NULL THEN 'missing EVSE uid'
            WHEN start_ts IS NULL THEN 'missing or unreadable start_date_time'
            WHEN energy IS NULL THEN 'missing or non-numeric energy'
            WHEN energy < 0 AND NOT credit THEN 'negative energy'  -- a credit CDR reverses its original
            WHEN abs(energy) > {options.max_kwh} THEN 'absurd energy (over {options.max_kwh:g} kWh)'
            WHEN cost IS NULL THEN 'missing or non-numeric total_cost.excl_vat'
            WHEN cost < 0 AND NOT credit THEN 'negative cost on a CDR that is not a credit'
            WHEN abs(cost) > {options.max_cost} THEN 'absurd cost (over {options.max_cost:g})'
            WHEN currency IS NULL OR length(currency) <> 3 OR NOT regexp_full_match(currency, '[A-Z]{{3}}')
                THEN 'currency is not ISO 4217'
            WHEN end_ts IS NOT NULL AND end_ts < start_ts THEN 'ends before it starts'
        END AS reason,
        upper(cc) || '*' || upper(pid) || '*' || id AS key, upper(cc) || '*' || upper(pid) AS party,
        upper(tcc) || '*' || upper(tpid) AS token_party, uid, evse,
        -- the UTC wall time from the instant's microseconds (no ICU time-zone conversion per row)
        make_timestamp(epoch_us(start_ts)) AS start_ts, make_timestamp(epoch_us(end_ts)) AS end_ts,
        energy, cost, currency, credit
        FROM (
            SELECT blank, ok, cc, pid, id, uid, tcc, tpid, evse, TRY_CAST(start_s AS TIMESTAMPTZ) AS start_ts,
                   TRY_CAST(end_s AS TIMESTAMPTZ) AS end_ts, TRY_CAST(energy_s AS DOUBLE) AS energy,
                   TRY_CAST(cost_s AS DECIMAL(18, 4)) AS cost, currency, {credit} AS credit
            FROM ({source})
        )
    """


def _read(
    con: duckdb.DuckDBPyConnection, side: str, path: Path, kind: ObjectKind, options: LoadOptions
) -> str:
    """Build ``v_<side>``; returns the word naming a position in the file (line / record).

    Fast path for JSON Lines: DuckDB's own ``read_json`` with typed columns, used only when it returns a row for
    every line of the file (it skips empty and whitespace-only lines, and fails on an object spread over several
    lines), so positions stay exact. A line it could not parse reads as all-NULL: only those rows are read again
    (in Python, by position) to tell a broken line from an object missing its id. Otherwise (or for arrays) each
    line is read as text and its fields extracted one by one, which names every bad line.
    """
    array = _is_array(path)
    if not array:
        try:
            con.execute(_validated(side, _fast_source(kind, _literal(path)), kind, options))
        except duckdb.Error:  # e.g. an object spread over several lines: the slow path names each line
            con.execute(f"DROP TABLE IF EXISTS v_{side}")
        else:
            rows = con.execute(f"SELECT rowid FROM v_{side} WHERE reason = ?", [_MISSING_ID]).fetchall()
            lines, raw = _scan(path, (int(r[0]) for r in rows), count=True)  # one pass: count and re-read
            parsed = {i: _object(line) for i, line in raw.items()}
            if con.execute(f"SELECT count(*) FROM v_{side}").fetchone() == (lines,) and not any(
                o is not None and all(o.get(k) is not None for k in ("country_code", "party_id", "id"))
                for o in parsed.values()  # a re-read line that has its id: rows and lines are not aligned
            ):
                broken = [i for i, o in parsed.items() if o is None]
                if broken:
                    con.execute(
                        f"UPDATE v_{side} SET reason = 'not a JSON object' WHERE rowid IN (SELECT unnest(?))",
                        [broken],
                    )
                return "line"
            con.execute(f"DROP TABLE v_{side}")  # e.g. an empty line read_json skipped: positions would shift
    source = _slow_source(con, side, kind, path, array)
    con.execute(_validated(side, source, kind, options))
    con.execute(f"DROP TABLE s_{side}")
    return "record" if array else "line"


def stage(
    con: duckdb.DuckDBPyConnection,
    side: str,
    path: Path,
    kind: ObjectKind,
    options: LoadOptions | None = None,
) -> None:
    """Read and validate one file into ``v_<side>`` (raw uids; see :func:`finish`); bad records go to ``errors``."""
    options = options or LoadOptions()
    try:
        unit = _read(con, side, path, kind, options)
    except duckdb.Error as exc:
        raise InputError(
            # DuckDB's message may quote the offending line (raw tokens): only its class is shown
            f"cannot read as OCPI {kind}s ({type(exc).__name__}; e.g. a line over 64 MiB)",
            source=str(path),
        ) from None
    # duplicate ids (unique per country_code + party_id): the first good record wins, later ones are errors
    con.execute(f"""
        CREATE TEMP TABLE dup_{side} AS
        SELECT v.rowid AS idx, 'duplicate id (first seen at {unit} ' || (f.first_idx + 1) || ')' AS why
        FROM v_{side} v JOIN (SELECT key, min(rowid) AS first_idx FROM v_{side} WHERE reason IS NULL
                              GROUP BY key HAVING count(*) > 1) f USING (key)
        WHERE v.reason IS NULL AND v.rowid > f.first_idx
    """)
    con.execute(
        "CREATE TABLE IF NOT EXISTS errors (side VARCHAR, file VARCHAR, position VARCHAR, id VARCHAR, reason VARCHAR)"
    )
    con.execute(
        f"INSERT INTO errors SELECT ?, ?, '{unit} ' || (idx + 1), key, why FROM ("
        f"SELECT rowid AS idx, key, reason AS why FROM v_{side} WHERE reason <> '' "
        f"UNION ALL SELECT d.idx, v.key, d.why FROM dup_{side} d JOIN v_{side} v ON v.rowid = d.idx) ORDER BY idx",
        [side, str(path)],
    )


def finish(con: duckdb.DuckDBPyConnection, sides: Sequence[str], pseudonymiser: Pseudonymiser) -> None:
    """Create the tables ``<side>`` (good records, tokens as pseudonyms) and drop every staging table.

    The distinct uids of all sides pass through Python once each (a card both partners saw is hashed once); they
    go back as one separated string, which DuckDB splits - far cheaper than a list parameter (uids with control
    characters were rejected by validation).
    """
    distinct = (
        "SELECT DISTINCT uid FROM ("
        + " UNION ALL ".join(f"SELECT uid FROM v_{side} WHERE reason IS NULL" for side in sides)
        + ")"
    )
    uids = [row[0] for row in con.execute(distinct).fetchall()]
    refs = [pseudonymiser.pseudonymise(u) for u in uids]
    con.execute(
        "CREATE TEMP TABLE tok AS SELECT unnest(string_split(?, chr(31))) AS uid, "
        "unnest(string_split(?, chr(31))) AS token_ref WHERE ? > 0",
        ["\x1f".join(uids), "\x1f".join(refs), len(uids)],
    )
    del uids
    for side in sides:
        con.execute(f"""
            CREATE TABLE {side} AS
            SELECT v.rowid AS idx, v.key, v.party, v.token_party, t.token_ref, v.evse, v.start_ts, v.end_ts, v.energy,
                   v.cost, v.currency, v.credit
            FROM v_{side} v JOIN tok t USING (uid)
            WHERE v.reason IS NULL AND v.rowid NOT IN (SELECT idx FROM dup_{side})
        """)
        con.execute(f"DROP TABLE v_{side}")
        con.execute(f"DROP TABLE dup_{side}")
    con.execute("DROP TABLE tok")


def load(
    con: duckdb.DuckDBPyConnection,
    side: str,
    path: Path,
    kind: ObjectKind,
    pseudonymiser: Pseudonymiser,
    options: LoadOptions | None = None,
) -> None:
    """Create table ``<side>`` (good records) and append to ``errors`` (side, file, position, id, reason)."""
    stage(con, side, path, kind, options)
    finish(con, [side], pseudonymiser)
