"""Wire-level nouns of the simulator: session plans, message ids, CALL/CALLRESULT pairs, OCPP enumerations."""

from __future__ import annotations

import hashlib
import random
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargeguard.sim.timefmt import format_ts

Line = dict[str, Any]
Emit = tuple[float, Line]  # (transport time in epoch seconds, capture line whose "ts" is filled on output)

_MASK48 = (1 << 48) - 1
_STEP = 0x9E3779B97F4B  # odd: n -> base + n * _STEP is a bijection modulo 2**48 (ids look scattered, never repeat)

REASONS_16 = frozenset(
    {
        "EmergencyStop",
        "EVDisconnected",
        "HardReset",
        "Local",
        "Other",
        "PowerLoss",
        "Reboot",
        "Remote",
        "SoftReset",
        "UnlockCommand",
        "DeAuthorized",
    }
)
REASON_TO_201 = {
    "HardReset": "ImmediateReset",
    "SoftReset": "Reboot",
    "UnlockCommand": "Other",
}
REASONS_201 = frozenset(
    {
        "DeAuthorized",
        "EmergencyStop",
        "EnergyLimitReached",
        "EVDisconnected",
        "GroundFault",
        "ImmediateReset",
        "Local",
        "LocalOutOfCredit",
        "MasterPass",
        "Other",
        "OvercurrentFault",
        "PowerLoss",
        "PowerQuality",
        "Reboot",
        "Remote",
        "SOCLimitReached",
        "StoppedByEV",
        "TimeLimitReached",
        "Timeout",
    }
)
TRIGGER_FOR_REASON = {
    "Local": "StopAuthorized",
    "EVDisconnected": "EVCommunicationLost",
    "Remote": "RemoteStop",
    "DeAuthorized": "Deauthorized",
    "ImmediateReset": "ResetCommand",
    "Reboot": "ResetCommand",
    "EnergyLimitReached": "EnergyLimitReached",
    "TimeLimitReached": "TimeLimitReached",
    "Other": "AbnormalCondition",
}
AUTH_16 = frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"})
AUTH_201 = frozenset(
    {
        "Accepted",
        "Blocked",
        "ConcurrentTx",
        "Expired",
        "Invalid",
        "NoCredit",
        "NotAllowedTypeEVSE",
        "NotAtThisLocation",
        "NotAtThisTime",
        "Unknown",
    }
)


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """What happened in one charging session; ``session_lines`` turns it into wire traffic."""

    station: str
    ocpp: str  # "1.6" or "2.0.1"
    connector_id: int
    evse_id: int
    token: str | None
    transaction_id: str
    start: datetime
    end: datetime
    energy_wh: float
    meter_start_wh: float
    sample_interval_s: float | None = 300.0
    auth_status: str = "Accepted"
    stop_reason: str = "Local"
    max_power_w: float | None = None  # profile shape: ramp up, plateau, taper


class MessageIds:
    """Deterministic OCPP-J message ids, unique per (station, direction) for the life of the generator.

    ``style`` "uuid" gives UUID-shaped ids, "counter" decimal counters (as many 1.6 firmwares send),
    "mixed" picks one of the two per station, deterministically. Ids depend only on the seed, the station
    and the direction.
    """

    __slots__ = ("_seed", "_state", "_style")

    def __init__(self, seed: int | str = 0, *, style: str = "uuid") -> None:
        if style not in ("uuid", "counter", "mixed"):
            raise ValueError(f"unknown message id style {style!r}")
        self._seed = str(seed)
        self._style = style
        self._state: dict[tuple[str, str], list[Any]] = {}

    def next(self, station: str, direction: str) -> str:
        """The next id this station (or the csms towards it) uses in ``direction`` ("station" or "csms")."""
        state = self._state.get((station, direction)) or self._start(station, direction)
        n = state[1] = state[1] + 1
        if state[2]:
            return str(state[0] + n)
        # A random UUID-shaped prefix per (station, direction) and a 48-bit counter: unique and cheap.
        return f"{state[3]}{(state[0] + n * _STEP) & _MASK48:012x}"

    def _start(self, station: str, direction: str) -> list[Any]:
        digest = hashlib.blake2b(f"{self._seed}|{station}|{direction}".encode(), digest_size=17).digest()
        h = digest[:10].hex()
        counter_style = self._style == "counter" or (self._style == "mixed" and digest[16] < 77)
        base = int.from_bytes(digest[10:16], "big")
        state: list[Any] = [base % 900_000 if counter_style else base, 0, counter_style,
                            f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-"]  # fmt: skip
        self._state[(station, direction)] = state
        return state


def wire_transaction_id(plan: SessionPlan) -> str:
    """The transaction id as it appears on the wire: 1.6 needs an integer, 2.0.1 takes a string of <= 36."""
    if plan.ocpp == "1.6":
        text = plan.transaction_id.strip()
        if text.isdigit() and len(text) <= 9:
            return str(int(text))
        return str(zlib.crc32(text.encode()) % 2_000_000_000 + 1)
    return plan.transaction_id[:36]


def call(
    out: list[Emit],
    t: float,
    station: str,
    ocpp: str,
    action: str,
    payload: dict[str, Any],
    response: dict[str, Any] | None,
    *,
    rng: random.Random,
    ids: MessageIds,
    sender: str = "station",
) -> float:
    """Append a CALL sent at ``t`` and, unless ``response`` is None, its CALLRESULT a few ms later."""
    message_id = ids.next(station, sender)
    out.append(
        (
            t,
            {
                "ts": "",
                "station": station,
                "ocpp": ocpp,
                "from": sender,
                "frame": [2, message_id, action, payload],
            },
        )
    )
    if response is not None:
        answerer = "csms" if sender == "station" else "station"
        t_result = t + 0.005 + rng.random() * 0.075
        out.append(
            (
                t_result,
                {
                    "ts": "",
                    "station": station,
                    "ocpp": ocpp,
                    "from": answerer,
                    "frame": [3, message_id, response],
                },
            )
        )
    return t


def finish(emits: list[Emit]) -> list[Line]:
    """Sort by transport time (stable) and fill each line's ``ts``."""
    emits.sort(key=_first)
    lines = []
    for t, line in emits:
        line["ts"] = format_ts(t)
        lines.append(line)
    return lines


def _first(item: Emit) -> float:
    return item[0]
