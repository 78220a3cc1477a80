"""Live detection gives the same alerts as scanning the recorded capture; enforcement verdicts follow open alerts."""

from __future__ import annotations

from typing import Any

from chargeguard import scenario
from chargeguard.events import Alert, Severity
from chargeguard.inventory import parse_inventory
from chargeguard.live import LiveDetection
from chargeguard.pipeline import ScanPipeline
from chargeguard.settings import Settings
from chargeguard.sources.capture import record_from_obj
from chargeguard.vault.pseudonyms import Pseudonymiser

PSEUDO = Pseudonymiser({1: bytes(range(32))}, 1)


def _inventory() -> Any:
    rows = scenario.build(7)[1]
    return parse_inventory([{k: str(v) for k, v in r.items()} for r in rows], name="scenario")


def test_live_and_replay_agree() -> None:
    lines, _ = scenario.build(7)
    live_alerts: list[Alert] = []
    live = LiveDetection(Settings(lateness_s=0), PSEUDO, inventory=_inventory(), sinks=[live_alerts.append])
    for line in lines:
        (live.on_frame if "frame" in line else live.on_connection)(dict(line))
    live.close()
    replayed: list[Alert] = []
    pipeline = ScanPipeline(Settings(lateness_s=0), PSEUDO, inventory=_inventory(), on_close=replayed.append)
    for number, line in enumerate(lines, start=1):
        pipeline.feed(record_from_obj(line, f"replay:{number}"))
    pipeline.finish()
    closed = [a for a in live_alerts if a.status == "closed"]
    opened = [a for a in live_alerts if a.status == "open"]
    assert sorted((a.id, a.kind, a.count) for a in closed) == sorted(
        (a.id, a.kind, a.count) for a in replayed
    )
    assert {a.id for a in opened} == {a.id for a in closed}  # every alert was announced when it opened


def test_token_verdict_follows_open_high_severity_token_alerts() -> None:
    lines, _ = scenario.build(7)
    live = LiveDetection(
        Settings(lateness_s=0),
        PSEUDO,
        inventory=_inventory(),
        enforce_kinds={"token.concurrent_use"},
        enforce_severity=Severity.HIGH,
    )
    verdicts: set[str] = set()
    for line in lines:
        (live.on_frame if "frame" in line else live.on_connection)(dict(line))
        verdict = live.token_verdict(scenario.CLONED)
        if verdict is not None:
            verdicts.add(verdict.kind)
        assert live.token_verdict(scenario.BENIGN_TOKENS[0]) is None
    assert verdicts == {"token.concurrent_use"}
    live.close()
    assert live.token_verdict(scenario.CLONED) is None  # closed alerts no longer enforce
