"""Enforce mode clears the authorisation cache it polluted: real OCPP 1.6 / 2.0.1 stations with a cache, a real
central system, ClearCache from the gateway when the alert closes or the token is allow-listed."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import orjson
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as c16
from ocpp.v16 import call_result as r16
from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import ClearCacheStatus
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as c201
from ocpp.v201 import call_result as r201
from ocpp.v201.enums import Action as Action201

from chargeguard.allowlist import AllowEntry
from chargeguard.events import Alert, Severity
from chargeguard.inventory import parse_inventory
from chargeguard.live import LiveDetection
from chargeguard.settings import Settings
from chargeguard.sources.ocpp.gateway.allowlist_watch import AllowListWatch
from chargeguard.sources.ocpp.gateway.cache_clear import AuthorizationCacheClearer
from chargeguard.sources.ocpp.gateway.enforce import BlockTokensUnderAlert
from chargeguard.store import Store
from chargeguard.vault.pseudonyms import Pseudonymiser

PW16 = "0123456789abcdef0123456789abcdef01234567"
PW201 = "correct-horse-battery-staple-1"
CLONED = "04C10AED0CA8D1"
OTHER = "04B2B3C4D5E6F7"
PSEUDO = Pseudonymiser({1: bytes(range(32))}, 1)
INVENTORY = parse_inventory(
    [
        {"station": "CP-1", "latitude": "56.46", "longitude": "-2.97", "max_kw": "22"},
        {"station": "CP-NOSUB", "latitude": "55.95", "longitude": "-3.19", "max_kw": "22"},
    ],
    name="test",
)


class WallClock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


class CachingStation16(Cp16):
    """A 1.6 station with an authorisation cache (3.5.1): answers of Authorize and StartTransaction are cached;
    a presented card found in the cache is decided locally, without asking the central system."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.cache: dict[str, str] = {}
        self.asked = 0

    async def present(self, id_tag: str) -> str:
        if id_tag in self.cache:
            return f"cache:{self.cache[id_tag]}"
        self.asked += 1
        answer = await self.call(c16.Authorize(id_tag=id_tag))
        self.cache[id_tag] = answer.id_tag_info["status"]
        return str(answer.id_tag_info["status"])

    async def start_transaction(self, id_tag: str) -> str:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        answer = await self.call(
            c16.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=0, timestamp=now)
        )
        self.cache[id_tag] = answer.id_tag_info["status"]
        return str(answer.id_tag_info["status"])

    @on(Action16.clear_cache)
    async def on_clear_cache(self) -> r16.ClearCache:
        self.cache.clear()
        return r16.ClearCache(status=ClearCacheStatus.accepted)


class CachingStation201(Cp201):
    """A 2.0.1 station with an authorisation cache (C10): AuthorizeResponse idTokenInfo is cached."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.cache: dict[str, str] = {}

    async def present(self, token: str) -> str:
        if token in self.cache:
            return f"cache:{self.cache[token]}"
        answer = await self.call(c201.Authorize(id_token={"idToken": token, "type": "ISO14443"}))
        self.cache[token] = answer.id_token_info["status"]
        return str(answer.id_token_info["status"])

    @on(Action201.clear_cache)
    async def on_clear_cache(self) -> r201.ClearCache:
        self.cache.clear()
        return r201.ClearCache(status="Accepted")


async def _station(h: Any, cls: type[Any], identity: str, **connect: Any) -> tuple[Any, asyncio.Task[None]]:
    ws = await h.connect(identity, **connect)
    station = cls(identity, ws)
    task = asyncio.create_task(station.start())
    return station, task


async def _until(predicate: Any, timeout_s: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.01)


def _actions(h: Any, prefix: str) -> list[dict[str, Any]]:
    return [
        line["detail"]
        for line in h.observer.events("action")
        if str(line["detail"].get("action", "")).startswith(prefix)
    ]


def test_the_polluted_cache_is_cleared_when_the_alert_closes(harness: Any) -> None:
    alerts: list[Alert] = []
    clearer = AuthorizationCacheClearer()
    live = LiveDetection(
        Settings(lateness_s=0, merge_gap_s=600),
        PSEUDO,
        inventory=INVENTORY,
        sinks=[alerts.append, clearer.on_alert],
        enforce_kinds={"token.concurrent_use"},
        enforce_severity=Severity.HIGH,
    )
    clearer.still_enforced = live.token_verdict
    wall = WallClock()

    async def scenario() -> None:
        async with harness(
            observers=(live,),
            rewriter=BlockTokensUnderAlert(live.token_verdict),
            cache_clearer=clearer,
            wall_clock=wall,
        ) as h:
            first, t1 = await _station(h, CachingStation16, "CP-1", password=PW16)
            assert await first.start_transaction(CLONED) == "Accepted"
            second, t2 = await _station(h, CachingStation16, "CP-NOSUB", password=PW16, subprotocols=())
            # the clone: the central system said Accepted, the gateway rewrote it, the station cached Blocked
            assert await second.start_transaction(CLONED) == "Blocked"
            assert await second.present(CLONED) == "cache:Blocked"
            assert second.asked == 0
            assert clearer.held_by(PSEUDO(CLONED)) == ("CP-NOSUB",)
            assert not _actions(h, "clear_cache")
            # an hour of quiet event time later the incident closes: the gateway clears CP-NOSUB's cache
            wall.now += dt.timedelta(hours=2)
            await first.call(c16.Heartbeat())
            await _until(lambda: _actions(h, "clear_cache_answered"))
            assert [a.status for a in alerts if a.kind == "token.concurrent_use"] == ["open", "closed"]
            sent, answered = _actions(h, "clear_cache")
            assert sent["action"] == "clear_cache_sent" and sent["reason"] == "alert_closed"
            assert answered["status"] == "Accepted" and answered["message_id"] == sent["message_id"]
            assert sent["token_ref"] == PSEUDO(CLONED) and sent["kind"] == "token.concurrent_use"
            assert [
                line["station"] for line in h.observer.events("action") if line["detail"] in (sent, answered)
            ] == [
                "CP-NOSUB",
                "CP-NOSUB",
            ]
            assert second.cache == {} and first.cache == {CLONED: "Accepted"}  # only where a rewrite went
            # the card is asked about again, and the central system's answer now passes unchanged
            assert await second.present(CLONED) == "Accepted" and second.asked == 1
            # the gateway's CALL and its answer never reached the central system, nor the capture as frames
            assert not [f for _, f in h.csms.received if sent["message_id"] in f]
            assert not [line for line in h.observer.frames() if sent["message_id"] in line["frame"]]
            for station, task in ((first, t1), (second, t2)):
                task.cancel()
                await station._connection.close()

    asyncio.run(scenario())


def _enforcing(token: str) -> tuple[dict[str, Alert], Any]:
    open_alerts: dict[str, Alert] = {}

    def verdict(raw_or_ref: str) -> Alert | None:
        return open_alerts.get(PSEUDO(raw_or_ref))

    alert = Alert(
        id="a-1",
        kind="token.concurrent_use",
        severity=Severity.HIGH,
        confidence=0.9,
        ts=dt.datetime.now(dt.UTC),
        station="CP-2",
        stations=("CP-2",),
        transactions=(),
        token_ref=PSEUDO(token),
        summary="test",
        evidence={},
        status="open",
    )
    open_alerts[PSEUDO(token)] = alert
    return open_alerts, verdict


def test_2_0_1_cache_is_cleared_when_the_token_is_allow_listed_even_after_a_reconnect(harness: Any) -> None:
    open_alerts, verdict = _enforcing(CLONED)
    clearer = AuthorizationCacheClearer(verdict)
    tls = {"password": PW201, "tls": True, "subprotocols": ("ocpp2.0.1",)}

    async def scenario() -> None:
        async with harness(rewriter=BlockTokensUnderAlert(verdict), cache_clearer=clearer) as h:
            station, task = await _station(h, CachingStation201, "CP-2", **tls)
            assert await station.present(CLONED) == "Blocked"
            assert await station.present(CLONED) == "cache:Blocked"
            task.cancel()
            await station._connection.close()
            await _until(lambda: "CP-2" not in h.gateway.sessions)
            now = dt.datetime.now(dt.UTC)
            entry = AllowEntry(
                "token.*", "token", PSEUDO(CLONED), now + dt.timedelta(days=1), "known shared card", "ops"
            )
            other = AllowEntry(
                "token.*", "token", PSEUDO("04FFFFFFFFFFFF"), now + dt.timedelta(days=1), "other", "ops"
            )
            assert clearer.check_allowlist([other], now) == 0
            assert clearer.check_allowlist([entry], now) == 1
            open_alerts.clear()
            # the station was offline when the token was released: the ClearCache waits for its next connection
            station, task = await _station(h, CachingStation201, "CP-2", **tls)
            station.cache = {CLONED: "Blocked"}  # what it kept across the reconnect
            await _until(lambda: _actions(h, "clear_cache_answered"))
            assert _actions(h, "clear_cache_answered")[0]["reason"] == "allow_listed"
            assert station.cache == {}
            assert await station.present(CLONED) == "Accepted"
            task.cancel()
            await station._connection.close()

    asyncio.run(scenario())


def test_a_closed_alert_does_not_release_a_token_another_alert_still_holds() -> None:
    open_alerts, verdict = _enforcing(CLONED)
    clearer = AuthorizationCacheClearer(verdict)
    sent: list[str] = []

    class Holder:
        identity = "CP-2"

        async def send_own_call(self, action: str, payload: dict[str, Any], detail: dict[str, Any]) -> None:
            sent.append(action)

    async def scenario() -> None:
        tasks: list[asyncio.Task[None]] = []
        clearer.bind({"CP-2": Holder()}, lambda coroutine: tasks.append(asyncio.create_task(coroutine)))
        clearer.rewritten(
            "CP-2", {"token_ref": PSEUDO(CLONED), "alert": "a-0", "kind": "token.impossible_travel"}
        )
        closed = Alert(**{**_alert_fields(open_alerts), "id": "a-0", "status": "closed"})
        clearer.on_alert(closed)  # a-1 (concurrent use) is still open and enforced
        await asyncio.sleep(0.01)
        assert sent == [] and clearer.held_by(PSEUDO(CLONED)) == ("CP-2",)
        open_alerts.clear()
        clearer.on_alert(closed)
        await asyncio.sleep(0.01)
        assert sent == ["ClearCache"] and clearer.held_by(PSEUDO(CLONED)) == ()

    asyncio.run(scenario())


def _alert_fields(open_alerts: dict[str, Alert]) -> dict[str, Any]:
    alert = next(iter(open_alerts.values()))
    return {name: getattr(alert, name) for name in alert.__dataclass_fields__}


def test_the_allowlist_watch_unblocks_and_releases_from_the_store(tmp_path: Any) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    live = LiveDetection(Settings(lateness_s=0), PSEUDO, enforce_kinds={"token.concurrent_use"})
    open_alerts, _ = _enforcing(CLONED)
    live._token_alerts.update(open_alerts)  # an open enforceable alert, as live detection keeps it
    clearer = AuthorizationCacheClearer()
    watch = AllowListWatch(store, live, clearer)
    clearer.rewritten("CP-2", {"token_ref": PSEUDO(CLONED), "alert": "a-1", "kind": "token.concurrent_use"})
    assert watch.verdict(CLONED) is not None
    watch.refresh()
    assert clearer.held_by(PSEUDO(CLONED)) == ("CP-2",)
    now = dt.datetime.now(dt.UTC)
    store.add_allow(
        AllowEntry(
            "token.concurrent_use", "token", PSEUDO(CLONED), now + dt.timedelta(days=1), "shared card", "ops"
        )
    )
    assert watch.verdict(CLONED) is not None  # not yet read from the store
    watch.refresh()
    assert watch.verdict(CLONED) is None
    assert clearer.held_by(PSEUDO(CLONED)) == () and clearer.releases == 1
    assert len(live.engine.allowlist) == 1
    store.close()


class SlowStation16(Cp16):
    @on(Action16.clear_cache)
    async def on_clear_cache(self) -> r16.ClearCache:
        await asyncio.sleep(0.3)
        return r16.ClearCache(status=ClearCacheStatus.accepted)


def test_a_late_answer_to_the_gateways_call_still_never_reaches_the_csms(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            station, task = await _station(h, SlowStation16, "CP-1", password=PW16)
            await station.call(c16.Heartbeat())
            session = h.gateway.sessions["CP-1"]
            session._own_call_timeout_s = 0.1
            await session.send_own_call("ClearCache", {}, {"reason": "test"})
            await _until(lambda: _actions(h, "own_call_answered_late"))
            sent = _actions(h, "clear_cache_sent")[0]
            assert [a["action"] for a in _actions(h, "clear_cache")] == [
                "clear_cache_sent",
                "clear_cache_unanswered",
            ]
            assert _actions(h, "own_call_answered_late")[0]["message_id"] == sent["message_id"]
            await station.call(c16.Heartbeat())  # the relay goes on
            assert not [f for _, f in h.csms.received if sent["message_id"] in f]
            assert not [line for line in h.observer.frames() if sent["message_id"] in line["frame"]]
            task.cancel()
            await station._connection.close()

    asyncio.run(scenario())


class _Station:
    """A station leg that records gateway CALLs; ``fail`` makes the send raise as a closed leg does."""

    def __init__(self, identity: str, *, fail: bool = False, block: asyncio.Event | None = None) -> None:
        self.identity = identity
        self.fail = fail
        self.block = block
        self.sent: list[str] = []

    async def send_own_call(self, action: str, payload: dict[str, Any], detail: dict[str, Any]) -> None:
        if self.block is not None:
            await self.block.wait()
        if self.fail:
            raise ConnectionError("leg closed")
        self.sent.append(action)


def _bind(clearer: AuthorizationCacheClearer, stations: dict[str, _Station]) -> list[asyncio.Task[None]]:
    tasks: list[asyncio.Task[None]] = []
    clearer.bind(stations, lambda coroutine: tasks.append(asyncio.create_task(coroutine)))
    return tasks


def test_clear_cache_debts_survive_a_gateway_restart(tmp_path: Any) -> None:
    state = tmp_path / "state" / "enforce.json"
    token = PSEUDO(CLONED)

    async def before_restart() -> None:
        clearer = AuthorizationCacheClearer(lambda _: None, state_file=state)
        _bind(clearer, {})  # no station connected
        clearer.rewritten("CP-1", {"token_ref": token, "alert": "a-1", "kind": "token.concurrent_use"})
        clearer.rewritten(
            "CP-2", {"token_ref": PSEUDO(OTHER), "alert": "a-2", "kind": "token.concurrent_use"}
        )
        closed = Alert(**{**_alert_fields(_enforcing(CLONED)[0]), "id": "a-1", "status": "closed"})
        clearer.on_alert(closed)  # CP-1 owes a ClearCache; CP-2 still holds a rewritten answer

    asyncio.run(before_restart())
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    written = state.read_text()
    assert CLONED not in written and OTHER not in written and token in written  # pseudonyms only

    async def after_restart() -> None:
        clearer = AuthorizationCacheClearer(lambda _: None, state_file=state)
        stations = {"CP-1": _Station("CP-1"), "CP-2": _Station("CP-2"), "CP-3": _Station("CP-3")}
        tasks = _bind(clearer, stations)
        for station in stations.values():
            clearer.connected(station)
        await asyncio.gather(*tasks)
        # CP-1's debt was kept; CP-2's rewritten answer is no longer backed by an alert the new process holds
        assert [s.sent for s in stations.values()] == [["ClearCache"], ["ClearCache"], []]

    asyncio.run(after_restart())
    assert orjson.loads(state.read_bytes())["owed"] == {}


def test_a_clear_cache_in_flight_stays_owed_until_answered(tmp_path: Any) -> None:
    state = tmp_path / "enforce.json"

    async def scenario() -> None:
        clearer = AuthorizationCacheClearer(lambda _: None, state_file=state)
        gate = asyncio.Event()
        station = _Station("CP-1", block=gate)
        tasks = _bind(clearer, {"CP-1": station})
        clearer.rewritten(
            "CP-1", {"token_ref": PSEUDO(CLONED), "alert": "a-1", "kind": "token.concurrent_use"}
        )
        closed = Alert(**{**_alert_fields(_enforcing(CLONED)[0]), "id": "a-1", "status": "closed"})
        clearer.on_alert(closed)
        await asyncio.sleep(0.01)
        assert list(orjson.loads(state.read_bytes())["owed"]) == ["CP-1"]  # a crash now keeps the debt
        gate.set()
        await asyncio.gather(*tasks)
        assert station.sent == ["ClearCache"] and orjson.loads(state.read_bytes())["owed"] == {}
        failing = _Station("CP-1", fail=True)
        clearer.rewritten(
            "CP-1", {"token_ref": PSEUDO(CLONED), "alert": "a-3", "kind": "token.concurrent_use"}
        )
        tasks2 = _bind(clearer, {"CP-1": failing})
        clearer.on_alert(Alert(**{**_alert_fields(_enforcing(CLONED)[0]), "id": "a-3", "status": "closed"}))
        await asyncio.gather(*tasks2)
        assert list(orjson.loads(state.read_bytes())["owed"]) == ["CP-1"]  # the leg closed: still owed

    asyncio.run(scenario())


def test_an_unreadable_state_file_is_moved_aside_and_the_gateway_starts(tmp_path: Any) -> None:
    state = tmp_path / "enforce.json"
    state.write_bytes(b'{"version": 1, "owed": {"CP-1": {"token_ref": 7}}, "held": {}}')
    clearer = AuthorizationCacheClearer(lambda _: None, state_file=state)
    assert clearer.held_by(PSEUDO(CLONED)) == () and not state.exists()
    (aside,) = tmp_path.glob("enforce.json.unreadable-*")
    assert b'"token_ref": 7' in aside.read_bytes()  # kept for the operator, not lost
