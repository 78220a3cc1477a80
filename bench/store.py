"""Store write throughput through StoreSink (batches of 1000)."""

import sys
import tempfile
import time
from datetime import timedelta

from chargeguard.events import Alert, Severity, TransactionEnded
from chargeguard.store import Store
from chargeguard.testing import an_event, at

url = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else f"sqlite:///{tempfile.mkdtemp()}/bench.db"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
tok = "tok1_abcdefghijklm23"
txs = [
    an_event(
        TransactionEnded,
        ts=at(i),
        at=at(i),
        started_at=at(i) - timedelta(minutes=40),
        station=f"CP-{i % 5000:04d}",
        transaction_id=str(i),
        token_ref=tok,
        meter_start_wh=0.0,
        meter_stop_wh=12000.0,
        samples=10,
    )
    for i in range(n)
]
alerts = [
    Alert(
        id=f"al_{i:024d}",
        kind="token.concurrent_use",
        severity=Severity.HIGH,
        confidence=0.9,
        ts=at(i),
        station=f"CP-{i % 5000:04d}",
        stations=(f"CP-{i % 5000:04d}", "CP-9999"),
        transactions=(str(i), str(i + 1)),
        token_ref=tok,
        summary="one token charging at two stations",
        evidence={"overlap_s": 600, "merged": [{"a": 1}]},
        status="closed",
        count=2,
    )
    for i in range(n)
]
with Store.open(url) as store:
    for name, items, feed in (("transactions", txs, "on_event"), ("alerts", alerts, "on_close")):
        sink = store.sink(batch_size=1000)
        t0, c0 = time.perf_counter(), time.process_time()
        f = getattr(sink, feed)
        for item in items:
            f(item)
        sink.close()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"{store.dialect}: {name}: {len(items):,} rows in {dt:.2f} s wall = {len(items) / dt:,.0f} rows/s; "
            f"CPU {cpu:.2f} s = {len(items) / cpu:,.0f} rows/s"
        )

# baseline in the same run: plain sqlite3 executemany of the same number of 20-column rows, one transaction per 1000
if url.startswith("sqlite"):
    import sqlite3

    path = tempfile.mkdtemp() + "/raw.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, "
        + ", ".join(f"c{i}" for i in range(20))
        + ", UNIQUE (c0, c1, c2))"
    )
    rows = [(f"CP-{i % 5000:04d}", str(i), "2026-03-01 07:20:00.000000", *tuple(range(17))) for i in range(n)]
    sql = (
        "INSERT INTO t ("
        + ", ".join(f"c{i}" for i in range(20))
        + ") VALUES ("
        + ", ".join("?" * 20)
        + ") ON CONFLICT (c0, c1, c2) DO NOTHING"
    )
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(0, n, 1000):
        con.execute("BEGIN")
        con.executemany(sql, rows[s : s + 1000])
        con.execute("COMMIT")
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"baseline raw sqlite3: {n:,} rows in {dt:.2f} s wall = {n / dt:,.0f} rows/s; "
        f"CPU {cpu:.2f} s = {n / cpu:,.0f} rows/s"
    )
