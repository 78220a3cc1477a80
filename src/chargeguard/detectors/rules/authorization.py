"""The token.unauthorized_charging rule: energy on a token the central system refused or never authorised."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.txbook import TxBook
from chargeguard.events import (
    AuthorizationDecision,
    Event,
    Finding,
    MeterSample,
    Severity,
    TransactionEnded,
    TransactionStarted,
)

_START_CONTEXTS = frozenset({"StartTransaction", "TransactionEvent"})


@dataclass(frozen=True, slots=True)
class UnauthorizedChargingConfig:
    """Thresholds of token.unauthorized_charging.

    max_energy_on_invalid_wh: energy tolerated after the central system refused the token (the station needs a
      moment to stop; OCPP's MaxEnergyOnInvalidId plays the same role on the station).
    flag_tokenless: report 2.0.1 transactions that delivered energy without any token ever being authorised
      (turn off for networks with free-vend stations).
    """

    max_energy_on_invalid_wh: float = 1000.0
    flag_tokenless: bool = True


@dataclass(slots=True)
class _Auth:
    token_ref: str | None = None
    connector: str | None = None
    queued: bool = False
    start_wh: float | None = None
    last_wh: float | None = None
    rejected: str | None = None
    rejected_context: str | None = None
    at_start: bool = False
    baseline_wh: float | None = None
    accepted: bool = False
    fired: bool = False


class UnauthorizedCharging(Detector[UnauthorizedChargingConfig]):
    """Energy delivered on a token the central system refused or never authorised.

    Catches, per transaction and beyond ``max_energy_on_invalid_wh``:

    * a transaction whose start the central system answered with a status other than Accepted (Blocked,
      Expired, Invalid, ConcurrentTx, Unknown, NoCredit, ...) that still delivered energy - counted from
      meterStart;
    * the same for transactions replayed from the station's offline queue: the station charged an unknown
      token offline and the central system refused it afterwards (AllowOfflineTxForUnknownId abuse);
    * charging on after deauthorisation: a 2.0.1 TransactionEvent answer turning the token Invalid/Blocked
      while the register keeps rising - counted from the register at the moment of refusal;
    * (``flag_tokenless``) a 2.0.1 transaction that ended with energy but never carried a token at all.

    Why it matters: DOMAIN.md #5 (blocked/expired/stolen token still charging: stale local lists, CSMS that
    accept anyway), #6 (forcing a station offline to charge with an unknown tag), #22 (charging after
    deauthorisation beyond MaxEnergyOnInvalidId).

    False positives: stations configured with StopTransactionOnInvalidId=false and a large
    MaxEnergyOnInvalidId deliver energy by design (raise the tolerance); free-vend 2.0.1 stations (turn
    ``flag_tokenless`` off); an Accepted answer later in the transaction (another card) clears the refusal.

    References: OCPP 1.6 §4.8 / §5.x StartTransaction.conf idTagInfo, config keys StopTransactionOnInvalidId,
    MaxEnergyOnInvalidId, AllowOfflineTxForUnknownId; OCPP 2.0.1 C01, C15 (offline), E05, TxCtrlr
    StopTxOnInvalidId / MaxEnergyOnInvalidId, AuthCtrlr OfflineTxForUnknownIdEnabled; DOMAIN.md #5, #6, #22.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="token-unauthorized-charging",
        kinds=("token.unauthorized_charging",),
        title="Energy delivered on a refused token",
        severity=Severity.HIGH,
        references=(
            "OCPP 1.6 StopTransactionOnInvalidId",
            "OCPP 2.0.1 E05 / TxCtrlr.MaxEnergyOnInvalidId",
            "DOMAIN.md #5",
            "DOMAIN.md #6",
            "DOMAIN.md #22",
        ),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (
        TransactionStarted,
        AuthorizationDecision,
        MeterSample,
        TransactionEnded,
    )
    Config: ClassVar[type[Any]] = UnauthorizedChargingConfig

    def __init__(self, config: UnauthorizedChargingConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._tx: TxBook[_Auth] = TxBook(_Auth, context)

    def state_size(self) -> int:
        return len(self._tx)

    def process(self, event: Event) -> Iterable[Finding]:
        if type(event) is MeterSample:
            sampled = self._tx.for_sample(event.station, event.transaction_id, event.connector, event.ts)
            if sampled is None or event.energy_wh is None:
                return ()
            sampled.last_wh = event.energy_wh
            if sampled.rejected is None:
                return ()  # nothing refused: nothing to count
            if sampled.baseline_wh is None:
                sampled.baseline_wh = event.energy_wh
            tx = event.transaction_id or self._tx.resolve(event.station, None, event.connector)
            assert tx is not None
            return self._check(event, sampled, tx, event.energy_wh, ended=False)
        if isinstance(event, TransactionStarted):
            auth = self._tx.touch(event.station, event.transaction_id, event.ts, event.connector)
            auth.token_ref = event.token_ref or auth.token_ref
            auth.connector = event.connector
            auth.queued = event.queued
            if event.meter_start_wh is not None:
                auth.start_wh = event.meter_start_wh
                auth.last_wh = event.meter_start_wh if auth.last_wh is None else auth.last_wh
            if event.auth_status is not None:
                self._decide(
                    auth, event.auth_status, "StartTransaction", at_start=True, start_wh=event.meter_start_wh
                )
            return ()
        if isinstance(event, AuthorizationDecision):
            if event.transaction_id is None or event.context not in _START_CONTEXTS:
                return ()
            if self._tx.ended(event.station, event.transaction_id):
                return ()  # the answer to the Ended event: the transaction is over
            auth = self._tx.touch(event.station, event.transaction_id, event.ts)
            if auth.token_ref is None:
                auth.token_ref = event.token_ref
            unchanged = auth.last_wh is None or auth.start_wh is None or auth.last_wh <= auth.start_wh + 1.0
            at_start = event.context == "StartTransaction" or unchanged
            self._decide(auth, event.status, event.context, at_start=at_start, start_wh=auth.start_wh)
            return ()
        if isinstance(event, TransactionEnded):
            auth = self._tx.pop(event.station, event.transaction_id, event.ts, event.connector) or _Auth()
            auth.token_ref = auth.token_ref or event.token_ref
            auth.queued = auth.queued or event.queued
            if auth.last_wh is None:
                auth.last_wh = event.meter_start_wh
            if auth.rejected is None and not auth.accepted and event.auth_status is not None:
                self._decide(
                    auth, event.auth_status, "StartTransaction", at_start=True, start_wh=event.meter_start_wh
                )
            register = event.meter_stop_wh if event.meter_stop_wh is not None else event.last_sample_wh
            if register is None:
                return ()
            if (
                auth.rejected is None
                and not auth.accepted
                and auth.token_ref is None
                and self.config.flag_tokenless
            ):
                energy = event.energy_wh
                if (
                    event.ocpp.startswith("2")
                    and energy is not None
                    and energy > self.config.max_energy_on_invalid_wh
                ):
                    return [self._tokenless(event, energy)]
                return ()
            return self._check(event, auth, event.transaction_id, register, ended=True)
        return ()

    def _decide(
        self, auth: _Auth, status: str, context: str, *, at_start: bool, start_wh: float | None
    ) -> None:
        if status == "Accepted":
            auth.accepted = True
            auth.rejected = None  # (re-)authorised: another card, credit topped up
            auth.baseline_wh = None
            return
        if auth.rejected is not None:
            if auth.at_start and auth.baseline_wh is None:
                auth.baseline_wh = start_wh  # the 1.6 answer came before the transaction's meterStart
            return
        auth.rejected, auth.rejected_context, auth.at_start = status, context, at_start
        auth.baseline_wh = start_wh if at_start and start_wh is not None else auth.last_wh

    def _check(self, event: Event, auth: _Auth, tx: str, register: float, *, ended: bool) -> list[Finding]:
        if auth.fired or auth.rejected is None or auth.baseline_wh is None:
            return []
        delivered = register - auth.baseline_wh
        limit = self.config.max_energy_on_invalid_wh
        if delivered <= limit:
            return []
        auth.fired = True
        assert isinstance(event, MeterSample | TransactionEnded)
        if auth.queued and auth.at_start:
            how = "offline transaction for a token the central system then refused"
        elif auth.at_start:
            how = "transaction started on a refused token"
        else:
            how = "charging continued after the token was deauthorised"
        token = auth.token_ref
        return [
            self.finding(
                "token.unauthorized_charging",
                ts=event.ts,
                incident=token.lower() if token else f"{event.station}\x1f{tx}",
                summary=f"{how} ({auth.rejected}): {delivered / 1000:.1f} kWh delivered",
                confidence=0.95 if delivered > 10 * max(limit, 100.0) else 0.85,
                station=event.station,
                transactions=(tx,),
                token_ref=token,
                evidence={
                    "status": auth.rejected,
                    "refused_in": auth.rejected_context,
                    "offline": auth.queued,
                    "delivered_wh": round(delivered, 1),
                    "tolerance_wh": limit,
                    "connector": auth.connector,
                    "transaction_ended": ended,
                },
            )
        ]

    def _tokenless(self, event: TransactionEnded, energy: float) -> Finding:
        return self.finding(
            "token.unauthorized_charging",
            ts=event.ts,
            incident=f"{event.station}\x1f{event.transaction_id}",
            summary=f"transaction delivered {energy / 1000:.1f} kWh without any authorised token",
            severity=Severity.MEDIUM,
            confidence=0.6,
            station=event.station,
            transactions=(event.transaction_id,),
            evidence={
                "status": None,
                "refused_in": None,
                "offline": event.queued,
                "delivered_wh": round(energy, 1),
                "tolerance_wh": self.config.max_energy_on_invalid_wh,
                "connector": event.connector,
                "transaction_ended": True,
            },
        )
