"""Live detection in ``serve``: a partner's CDR raises an alert within its request, in the store and the alerts file,
and the fraud decision of real-time authorisation sees it at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import structlog

from chargeguard.cli.serve import attach_detection
from chargeguard.settings import Settings
from chargeguard.sources.ocpi.connector.config import DetectionConfig, ServeConfig
from chargeguard.sources.ocpi.connector.decision import TokenStatusDecision
from chargeguard.sources.ocpi.connector.live import OcpiLiveFeed
from chargeguard.sources.ocpi.connector.store import Partner
from chargeguard.sources.ocpi.events import CdrReceived, TokenStatus
from chargeguard.sources.ocpi.importer import decode_record
from chargeguard.sources.ocpi.models import Location, Token
from chargeguard.store import Store
from sources.ocpi.connector.ocpi_kit import (
    PSEUDONYMISER,
    RAW_CONTRACT,
    RAW_UID,
    HostRouter,
    a_cdr,
    a_location,
    a_token,
)
from sources.ocpi.connector.test_modules import _call, _registered
from test_canary import _encodings

BLOCKED_UID = "04B10C4ED00D80"
CDRS = "http://emsp.test/ocpi/2.2.1/emsp/cdrs"


def _token(uid: str, *, valid: bool) -> Token:
    token: Token = decode_record(
        orjson.dumps(a_token(uid, valid=valid)), "token", PSEUDONYMISER, source="test"
    )
    return token


def _cdr_for(i: int, uid: str) -> dict[str, Any]:
    cdr = a_cdr(i)
    cdr["cdr_token"] = {**cdr["cdr_token"], "uid": uid}
    return cdr


def test_a_posted_cdr_raises_alerts_live_and_blocks_the_token(router: HostRouter, tmp_path: Path) -> None:
    alerts_file = tmp_path / "alerts.jsonl"
    store = Store.open(f"sqlite:///{tmp_path / 'cg.db'}")

    async def run() -> None:
        _, emsp, _, to_emsp = await _registered(router)
        # the eMSP publishes its tokens: one valid, one it has blocked
        emsp.published.put("tokens", _token(RAW_UID, valid=True))
        emsp.published.put("tokens", _token(BLOCKED_UID, valid=False))
        emsp.decision = TokenStatusDecision(
            emsp.lookup_token, lambda p: [a.kind for a in store.alerts(token_ref=p, status="open", limit=20)]
        )
        config = ServeConfig(
            base_url="http://emsp.test",
            country_code="DE",
            party_id="EMS",
            roles=("EMSP",),
            detection=DetectionConfig(alerts_jsonl=alerts_file),
        )
        running = attach_detection(emsp, config, Settings(home=tmp_path), store, PSEUDONYMISER)
        assert running.feed.fed == 2  # the published tokens are known to the detectors from the start
        authorize = f"http://emsp.test/ocpi/2.2.1/emsp/tokens/{RAW_UID}/authorize?type=RFID"
        before = await _call(router, "POST", authorize, to_emsp)
        assert before.json()["data"]["allowed"] == "ALLOWED"

        # 1. a CDR for the token the eMSP had blocked: token.unauthorized_charging, within the POST
        blocked = await _call(router, "POST", CDRS, to_emsp, json=_cdr_for(9, BLOCKED_UID))
        assert blocked.json()["status_code"] == 1000
        (first,) = [orjson.loads(line) for line in alerts_file.read_bytes().splitlines()]
        assert first["kind"] == "token.unauthorized_charging" and first["status"] == "open"
        assert first["token_ref"] == PSEUDONYMISER(BLOCKED_UID) and first["transactions"] == ["NL*CPO/CDR9"]
        assert first["evidence"]["source"] == "ocpi" and first["evidence"]["blame"] == "cpo"
        assert [a.kind for a in store.alerts(status="open")] == ["token.unauthorized_charging"]

        # 2. the same charging billed twice under two ids: cdr.duplicate, and real-time authorisation now refuses
        for i in (1, 2):
            ok = await _call(router, "POST", CDRS, to_emsp, json=_cdr_for(i, RAW_UID))
            assert ok.json()["status_code"] == 1000
        kinds = [orjson.loads(line)["kind"] for line in alerts_file.read_bytes().splitlines()]
        assert kinds == ["token.unauthorized_charging", "cdr.duplicate"]
        after = await _call(router, "POST", authorize, to_emsp)
        data = after.json()["data"]
        assert data["allowed"] == "BLOCKED" and "cdr.duplicate" in data["info"]["text"]

        # end of serving: incidents close into the sinks
        running.close()
        final = [orjson.loads(line) for line in alerts_file.read_bytes().splitlines()]
        assert sorted((a["kind"], a["status"]) for a in final if a["status"] == "closed") == [
            ("cdr.duplicate", "closed"),
            ("token.unauthorized_charging", "closed"),
        ]

    try:
        asyncio.run(run())
    finally:
        store.close()
    written = alerts_file.read_bytes() + (tmp_path / "cg.db").read_bytes()
    assert b"tok1_" in written
    leaked = [
        form for raw in (RAW_UID, BLOCKED_UID, RAW_CONTRACT) for form in _encodings(raw) if form in written
    ]
    assert leaked == []


class _Collect:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[Any] = []
        self.fail = fail

    def process(self, event: Any) -> None:
        if self.fail:
            raise RuntimeError("engine down")
        self.events.append(event)


def test_feed_maps_stations_stamps_token_receipt_and_never_fails_the_request() -> None:
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    engine = _Collect()
    feed = OcpiLiveFeed(engine, mode="location", clock=lambda: now)
    partner = Partner(partner_id="p1", name="cpo")
    location: Location = decode_record(orjson.dumps(a_location(1)), "location", PSEUDONYMISER, source="t")
    feed("locations", location, partner)
    cdr = decode_record(orjson.dumps(a_cdr(1)), "cdr", PSEUDONYMISER, source="t")
    feed("cdrs", cdr, partner)
    feed("cdrs.duplicate_id", cdr, partner)  # refused by the module: not an event
    feed("tokens", _token(RAW_UID, valid=False), partner)
    cdr_seen, token_seen = engine.events
    assert isinstance(cdr_seen, CdrReceived) and cdr_seen.station == "LOC0001"  # location mode
    assert isinstance(token_seen, TokenStatus) and token_seen.received_at == now
    assert token_seen.ts == datetime(2026, 1, 1, tzinfo=UTC) and not token_seen.valid
    # a partner's clock in 2099 does not move event time past every grace period
    future = decode_record(
        orjson.dumps(a_cdr(2, last_updated="2099-01-01T00:00:00Z")), "cdr", PSEUDONYMISER, source="t"
    )
    feed("cdrs", future, partner)
    assert engine.events[-1].ts == now + timedelta(minutes=5) and feed.clamped == 1
    broken = OcpiLiveFeed(_Collect(fail=True))
    with structlog.testing.capture_logs() as logs:
        broken("cdrs", cdr, partner)
    assert broken.failures == 1 and logs[0]["event"] == "ocpi.live.failed" and RAW_UID not in repr(logs)
