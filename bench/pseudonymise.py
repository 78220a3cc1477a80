"""Benchmark: time per token of Pseudonymiser.pseudonymise next to a bare HMAC-SHA256 in the same run.

Target (issue 4): pseudonymising adds at most 5 us per token over the bare HMAC. Each figure has its own
baseline from the same interleaved run: one key against one bare ``hmac.new(...).digest()``, two layered keys
(a rotation in progress) against two bare HMACs of the same token. Also reported: the same HMAC from
precomputed inner/outer SHA-256 states (what the Pseudonymiser uses), the pass-through of an existing
pseudonym, and redact_text on a typical log line. No cache is involved: every call hashes.

    .venv/bin/python bench/pseudonymise.py [--tokens N] [--repeat R]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import random
import time
from collections.abc import Callable

from chargeguard.vault.pseudonyms import Pseudonymiser, _KeyedSha256
from chargeguard.vault.redact import redact_text


def _tokens(n: int) -> list[str]:
    rng = random.Random(42)
    out: list[str] = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(rng.randbytes(4).hex().upper())
        elif kind == 1:
            out.append(rng.randbytes(7).hex().upper())
        elif kind == 2:
            out.append(":".join(f"{b:02x}" for b in rng.randbytes(7)))
        else:
            out.append(f"DE-8EO-C{rng.randrange(10**8):08d}-{rng.randrange(10)}")
    return out


def _best_us(
    fns: list[Callable[[str], object]], inputs: list[list[str]], repeat: int
) -> list[tuple[float, float]]:
    """Best (CPU, wall) time per call of each function, in us; runs interleaved so load hits all alike.

    CPU time (``time.process_time``) is the figure the target is judged on: on the shared 2-core machine the
    wall clock also counts the time this process waits for a core.
    """
    best = [(float("inf"), float("inf"))] * len(fns)
    for _ in range(repeat):
        for i, (fn, items) in enumerate(zip(fns, inputs, strict=True)):
            cpu, wall = time.process_time(), time.perf_counter()
            for item in items:
                fn(item)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            best[i] = (min(best[i][0], cpu / len(items)), min(best[i][1], wall / len(items)))
    return [(c * 1e6, w * 1e6) for c, w in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()
    key = b"k" * 32
    tokens = _tokens(args.tokens)
    single = Pseudonymiser({1: key}, 1)
    pseudonyms = [single(t) for t in tokens]

    key2 = b"l" * 32

    def bare(token: str) -> bytes:
        return hmac.new(key, token.encode("utf-8"), hashlib.sha256).digest()

    def bare_two(token: str) -> bytes:
        inner = hmac.new(key, token.encode("utf-8"), hashlib.sha256).digest()
        return hmac.new(key2, inner, hashlib.sha256).digest()

    states = _KeyedSha256(key)

    def bare_states(token: str) -> bytes:
        return states.mac(token.encode("utf-8"))

    layered = Pseudonymiser({1: key, 2: key2}, 2, layers={2: 1})
    line = '[2, "19223201", "Authorize", {"idTag": "04A2B3C4D5E6F7"}] from CP-0001 at 2026-03-01T08:00:00Z'
    cases: list[tuple[str, Callable[[str], object], list[str]]] = [
        ("bare hmac.new(key, token, sha256).digest()", bare, tokens),
        ("two bare HMACs (layered baseline)", bare_two, tokens),
        ("HMAC from precomputed SHA-256 states", bare_states, tokens),
        ("Pseudonymiser.pseudonymise (one key)", single.pseudonymise, tokens),
        ("Pseudonymiser.pseudonymise (layered, 2 keys)", layered.pseudonymise, tokens),
        ("pass-through of an existing pseudonym", single.pseudonymise, pseudonyms),
        ("redact_text on a 100-character log line", redact_text, [line] * (len(tokens) // 10 or 1)),
    ]
    measured = _best_us([c[1] for c in cases], [c[2] for c in cases], args.repeat)
    times = dict(zip([c[0] for c in cases], measured, strict=True))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.tokens} tokens (RFID 4/7-byte, separated hex, eMAID), best of {args.repeat} interleaved runs, "
        f"load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    one, two = times[cases[0][0]][0], times[cases[1][0]][0]
    baselines = [one, two, one, one, two, one, one]
    print(f"  {'':48s} {'CPU us/token':>12s} {'wall':>8s}   added CPU us vs its baseline")
    for (name, _, _), base in zip(cases, baselines, strict=True):
        cpu, wall = times[name]
        which = "two bare HMACs" if base is two else "bare HMAC"
        print(f"  {name:48s} {cpu:12.3f} {wall:8.3f}   {cpu - base:+7.3f} vs {which}")
    added_one = times[cases[3][0]][0] - one
    added_two = times[cases[4][0]][0] - two
    for label, added in (("one key", added_one), ("two layered keys", added_two)):
        verdict = "met" if added <= 5.0 else "NOT met"
        print(f"target <= 5 us added per token, {label}: {verdict} ({added:+.3f} us)")


if __name__ == "__main__":
    main()
