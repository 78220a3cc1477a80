"""Benchmark: reconcile N CDRs per side (generated with known disputes) next to a plain DuckDB join of the same files.

Two figures, each beside the baseline measured in the same run:

* ``reconcile``: everything ``chargeguard reconcile`` does before printing - streaming both JSON Lines files into
  DuckDB, validating every record, pseudonymising every distinct token uid, matching by id and then by token +
  EVSE + start + energy, and totalling the amounts at stake;
* ``reconcile + repricing``: the same plus ``--tariffs``: the tariff engine recomputes the price of every price
  dispute and every CDR only the CPO has (decoded from the CPO's file by position; Python, per disputed record).

The baseline is the floor: DuckDB's ``read_json`` of the same files (country_code, party_id, id, total_energy) and
one join on (country_code, party_id, id). The machine is shared and noisy: compare the ratio, and repeat with
``--rounds`` (the best round of each is reported). Generated files are kept in ``--dir`` with their ground truth and
reused by later runs.

    .venv/bin/python bench/reconcile.py [--cdrs 1000000] [--rounds 1] [--dir /tmp/cg-bench-reconcile]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from pathlib import Path

import duckdb

from chargeguard.reconcile.generate import Truth, generate, tariff
from chargeguard.reconcile.match import Reconciliation, reconcile
from chargeguard.reconcile.prices import reprice
from chargeguard.vault.pseudonyms import Pseudonymiser


def baseline(cpo: Path, emsp: Path) -> tuple[float, float, int]:
    con = duckdb.connect(":memory:")
    started, cpu = time.perf_counter(), time.process_time()
    cols = "{'country_code': 'VARCHAR', 'party_id': 'VARCHAR', 'id': 'VARCHAR', 'total_energy': 'DOUBLE'}"
    row = con.execute(f"""
        SELECT count(*) FROM read_json('{cpo}', format='newline_delimited', columns={cols}, ignore_errors=true) c
        JOIN read_json('{emsp}', format='newline_delimited', columns={cols}, ignore_errors=true) e
        USING (country_code, party_id, id)
    """).fetchone()
    return time.perf_counter() - started, time.process_time() - cpu, int(row[0]) if row else 0


def files(directory: Path, n: int) -> tuple[Path, Path, Truth]:
    """The partner files for ``n`` CDRs and their ground truth, generated once and reused."""
    directory.mkdir(parents=True, exist_ok=True)
    cpo, emsp = directory / f"cpo-{n}.jsonl", directory / f"emsp-{n}.jsonl"
    sidecar = directory / f"truth-{n}.json"
    if cpo.exists() and emsp.exists() and sidecar.exists():
        return cpo, emsp, Truth(**json.loads(sidecar.read_text()))
    started = time.perf_counter()
    truth = generate(cpo, emsp, n)
    sidecar.write_text(json.dumps(dataclasses.asdict(truth)))
    print(
        f"generated {truth.cpo_records:,} + {truth.emsp_records:,} records in {time.perf_counter() - started:.1f} s"
    )
    return cpo, emsp, truth


def reproduced(result: Reconciliation, truth: Truth) -> bool:
    c = result.counts
    return (
        c["matched_by_id"] == truth.matched_by_id
        and c["matched_fuzzy"] == truth.renamed
        and c["unmatched_cpo"] == truth.missing_at_emsp
        and c["unmatched_emsp"] == truth.only_at_emsp
        and c["disputed"] == truth.price + truth.energy + truth.currency
        and c["errors_cpo"] == truth.bad_json + truth.bad_energy + truth.bad_duplicate
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/cg-bench-reconcile"))
    args = parser.parse_args()
    cpo, emsp, truth = files(args.dir, args.cdrs)
    pseudonymiser = Pseudonymiser({1: b"b" * 32}, 1)
    tariffs = {"T": tariff()}
    best: dict[str, float] = {}
    ok = True
    for _ in range(args.rounds):
        base_s, base_cpu, joined = baseline(cpo, emsp)
        started, cpu = time.perf_counter(), time.process_time()
        result = reconcile(cpo, emsp, pseudonymiser)
        full_s, full_cpu = time.perf_counter() - started, time.process_time() - cpu
        verdicts = reprice(result, tariffs, pseudonymiser)
        priced_s, priced_cpu = time.perf_counter() - started, time.process_time() - cpu
        ok = ok and reproduced(result, truth)
        ok = (
            ok
            and len(verdicts) == truth.price + truth.missing_at_emsp
            and {v.verdict for v in verdicts} == {"cpo"}
        )
        result.con.close()
        print(
            f"round: baseline {base_s:.2f} s ({base_cpu:.2f} CPU-s), reconcile {full_s:.2f} s ({full_cpu:.2f} CPU-s), "
            f"with repricing {priced_s:.2f} s ({priced_cpu:.2f} CPU-s)",
            flush=True,
        )
        for name, value in (("base", base_s), ("full", full_s), ("priced", priced_s), ("base_cpu", base_cpu),
                            ("full_cpu", full_cpu), ("priced_cpu", priced_cpu)):  # fmt: skip
            best[name] = min(best.get(name, value), value)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    base_s = best["base"]
    base_cpu = best["base_cpu"]
    print(f"best of {args.rounds} round(s); CPU time is both DuckDB threads plus Python")
    print(f"plain DuckDB read_json + join on id  : {base_s:6.2f} s {base_cpu:6.2f} CPU-s ({joined:,} pairs)")
    for label, key in (("reconcile (no repricing)", "full"), ("reconcile + repricing", "priced")):
        print(
            f"chargeguard {label:<25}: {best[key]:6.2f} s {best[key + '_cpu']:6.2f} CPU-s  "
            f"ratio {best[key] / base_s:.1f}x wall, {best[key + '_cpu'] / base_cpu:.1f}x CPU"
        )
    print(f"repricing: {len(verdicts):,} CDRs through the tariff engine")
    print(f"ground truth reproduced: {ok}; peak RSS {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
