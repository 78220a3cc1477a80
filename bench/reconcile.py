"""Benchmark: reconcile N CDRs per side (generated with known disputes) next to a plain DuckDB join of the same files.

The figure covers everything ``chargeguard reconcile`` does before printing: streaming both JSON Lines files into
DuckDB, validating every record, pseudonymising every distinct token uid, matching by id and then by token + EVSE +
start + energy, and totalling the amounts at stake. It does NOT include price recomputation (``--tariffs``), which
runs in Python on the disputed records only. The baseline is the floor: DuckDB's ``read_json`` of the same files and
one join on (country_code, party_id, id).

    .venv/bin/python bench/reconcile.py [--cdrs 1000000] [--dir /tmp/cg-bench-reconcile]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import duckdb

from chargeguard.reconcile.generate import generate
from chargeguard.reconcile.match import reconcile
from chargeguard.vault.pseudonyms import Pseudonymiser


def baseline(cpo: Path, emsp: Path) -> tuple[float, int]:
    con = duckdb.connect(":memory:")
    started = time.perf_counter()
    cols = "{'country_code': 'VARCHAR', 'party_id': 'VARCHAR', 'id': 'VARCHAR', 'total_energy': 'DOUBLE'}"
    row = con.execute(f"""
        SELECT count(*) FROM read_json('{cpo}', format='newline_delimited', columns={cols}, ignore_errors=true) c
        JOIN read_json('{emsp}', format='newline_delimited', columns={cols}, ignore_errors=true) e
        USING (country_code, party_id, id)
    """).fetchone()
    return time.perf_counter() - started, int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/cg-bench-reconcile"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    cpo, emsp = args.dir / f"cpo-{args.cdrs}.jsonl", args.dir / f"emsp-{args.cdrs}.jsonl"
    started = time.perf_counter()
    truth = generate(cpo, emsp, args.cdrs)
    print(
        f"generated {truth.cpo_records:,} + {truth.emsp_records:,} records in {time.perf_counter() - started:.1f} s"
    )
    base_s, joined = baseline(cpo, emsp)
    pseudonymiser = Pseudonymiser({1: b"b" * 32}, 1)
    started = time.perf_counter()
    result = reconcile(cpo, emsp, pseudonymiser)
    full_s = time.perf_counter() - started
    c = result.counts
    ok = (
        c["matched_by_id"] == truth.matched_by_id
        and c["matched_fuzzy"] == truth.renamed
        and c["unmatched_cpo"] == truth.missing_at_emsp
        and c["unmatched_emsp"] == truth.only_at_emsp
        and c["disputed"] == truth.price + truth.energy + truth.currency
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"plain DuckDB read_json + join on id : {base_s:6.2f} s ({joined:,} pairs)")
    print(f"chargeguard reconcile (no repricing): {full_s:6.2f} s  ratio {full_s / base_s:.1f}x")
    print(f"counts {c}")
    print(f"ground truth reproduced: {ok}; peak RSS {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
