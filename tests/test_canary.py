"""Canary proof for the scan path: a capture full of known raw tokens and secrets goes through the real CLI (store,
alerts, logs at debug level, stdout/stderr), then every byte written is searched for them in several encodings."""

from __future__ import annotations

import base64
import gzip
import os
import subprocess
import sys
from pathlib import Path

import orjson

from chargeguard import scenario

SECRETS = ("00112233445566778899AABBCCDDEEFF", "hunter2pass")


def _encodings(token: str) -> set[bytes]:
    forms = {token, token.lower(), token.upper(), ":".join(token[i : i + 2] for i in range(0, len(token), 2))}
    out: set[bytes] = set()
    for form in forms:
        raw = form.encode()
        out |= {raw, base64.b64encode(raw), form.encode("utf-16-le"), raw.hex().encode()}
    return out


def _capture(tmp_path: Path) -> tuple[Path, Path]:
    lines, inventory = scenario.build(11)
    t = lines[-1]["ts"]
    lines.append(
        {
            "ts": t,
            "station": "DUN-01",
            "ocpp": "1.6",
            "from": "csms",
            "frame": [2, "k1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRETS[0]}],
        }
    )
    lines.append(
        {
            "ts": t,
            "station": "DUN-01",
            "ocpp": "1.6",
            "from": "csms",
            "frame": [2, "k2", "GetDiagnostics", {"location": f"ftp://diag:{SECRETS[1]}@192.0.2.9/up"}],
        }
    )
    lines.append(
        {
            "ts": t,
            "station": "DUN-01",
            "ocpp": "1.6",
            "from": "station",
            "frame": [2, "k3", "Authorize", {"idTag": scenario.CLONED + "FFFFFFFFFFFFFFFFFF"}],
        }
    )  # too long
    capture = tmp_path / "in" / "capture.jsonl.gz"
    capture.parent.mkdir()
    capture.write_bytes(gzip.compress(b"".join(orjson.dumps(line) + b"\n" for line in lines)))
    stations = tmp_path / "in" / "stations.csv"
    header = list(inventory[0])
    stations.write_text(
        ",".join(header) + "\n" + "\n".join(",".join(str(r[h]) for h in header) for r in inventory)
    )
    return capture, stations


def test_no_raw_token_or_secret_in_anything_written(tmp_path: Path) -> None:
    capture, stations = _capture(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "CHARGEGUARD_HOME": str(out / "home"),
        "CHARGEGUARD_LOG_LEVEL": "debug",
        "CHARGEGUARD_LOG_FORMAT": "json",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chargeguard",
            "scan",
            str(capture),
            "--stations",
            str(stations),
            "--alerts",
            str(out / "alerts.jsonl"),
        ],
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    written = [p for p in out.rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert "alerts.jsonl" in names and "chargeguard.db" in names
    blobs = [p.read_bytes() for p in written] + [result.stdout, result.stderr]
    scanned = sum(len(b) for b in blobs)
    assert scanned > 10_000
    alerts = (out / "alerts.jsonl").read_bytes()
    assert b"tok1_" in alerts  # pseudonyms are there, so the search below is meaningful
    canaries = [*scenario.BENIGN_TOKENS, scenario.CLONED, scenario.BLOCKED, *SECRETS]
    hits = [
        (canary, len(form))
        for canary in canaries
        for form in _encodings(canary)
        for blob in blobs
        if form in blob
    ]
    assert hits == [], f"{len(hits)} canary hits in {scanned} bytes"
