"""The cdr.price_mismatch and cdr.party_mismatch rules (OCPI billing: price against the tariff, roaming agreements)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.state import BoundedState
from chargeguard.errors import ConfigError, InputError
from chargeguard.events import Event, Finding, Severity
from chargeguard.sources.ocpi.events import CdrReceived, TariffKnown
from chargeguard.sources.ocpi.models import Tariff
from chargeguard.tariffs import TariffOptions, compute_cost, explain_difference


@dataclass(frozen=True, slots=True)
class PriceConfig:
    """abs_tolerance / rel_tolerance: billed may differ from the tariff by max(abs, rel * expected) (currency units);
    default_time_zone: for restrictions when the Location's zone is not known; absorb_parking: see
    chargeguard.tariffs.engine (the spec's step_size examples vs its Complex Tariff example)."""

    abs_tolerance: float = 0.05
    rel_tolerance: float = 0.01
    default_time_zone: str = "UTC"
    absorb_parking: bool = False


class CdrPriceMismatch(Detector[PriceConfig]):
    """A CDR's total_cost that its own tariffs do not give.

    Catches: the CDR's ``total_cost`` (excl. VAT, and incl. VAT where both sides have it) against the tariff
    engine's recomputation from the CDR's charging periods and the tariffs it carries (or Tariffs published
    earlier in the input by the same CPO), beyond ``max(abs_tolerance, rel_tolerance * expected)``. The evidence
    says which component and which periods differ, expected vs billed.

    Why it matters: price inflation against the published tariff - per kWh, per minute, parking or fees - is the
    commonest overbilling between roaming partners.

    False positives: tariffs that changed between the session and the CDR, eMSP-specific prices not published as
    Tariffs, restrictions evaluated in another zone than the Location's (pass Locations in the input), spec
    ambiguities (step_size around parking; see docs/tariffs.md). CDRs whose tariff cannot be found are skipped
    and counted (``unpriceable``), credit CDRs are skipped.

    References: OCPI 2.2.1 mod_tariffs (TariffElement, PriceComponent, step_size, restrictions, min/max_price),
    mod_cdrs (ChargingPeriod, total_cost).
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="cdr-price-mismatch",
        kinds=("cdr.price_mismatch",),
        title="CDR cost differs from its tariff",
        severity=Severity.MEDIUM,
        references=("OCPI 2.2.1 mod_tariffs", "OCPI 2.2.1 mod_cdrs total_cost"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (CdrReceived, TariffKnown)
    Config: ClassVar[type[Any]] = PriceConfig

    def __init__(self, config: PriceConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        limits = context.limits
        self._tariffs: BoundedState[str, dict[str, Tariff]] = BoundedState(limits.max_keys, limits.ttl_s * 52)
        self.unpriceable = 0

    def state_size(self) -> int:
        return len(self._tariffs)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, TariffKnown):
            if event.tariff is not None:
                self._tariffs.setdefault(event.party, dict, event.ts)[event.tariff.id] = event.tariff
            return ()
        if not isinstance(event, CdrReceived) or event.credit or event.cdr is None:
            return ()
        c = self.config
        try:
            breakdown = compute_cost(
                event.cdr,
                time_zone=event.time_zone or c.default_time_zone,
                tariffs=self._tariffs.get(event.party) or {},
                options=TariffOptions(absorb_parking=c.absorb_parking),
            )
        except InputError:
            self.unpriceable += 1
            return ()
        tolerance = max(
            Decimal(str(c.abs_tolerance)), Decimal(str(c.rel_tolerance)) * abs(breakdown.excl_vat)
        )
        differences = explain_difference(event.cdr, breakdown, tolerance=tolerance)
        if not any(d.what == "total" for d in differences):
            return ()
        total = next(d for d in differences if d.what == "total")
        over = total.difference > 0
        return (
            self.finding(
                "cdr.price_mismatch",
                ts=event.ts,
                incident=event.key,
                summary=(
                    f"CDR {event.key} bills {total.billed:.2f} {event.currency} ({total.vat}. VAT); its tariff "
                    f"gives {total.expected:.2f}"
                ),
                severity=Severity.HIGH if over and total.difference > 10 * tolerance else Severity.MEDIUM,
                station=event.station,
                transactions=(event.key,),
                token_ref=event.token_ref,
                evidence={
                    "currency": event.currency,
                    "direction": "overbilled" if over else "underbilled",
                    "differences": [d.as_evidence() for d in differences[:6]],
                    "bounds_applied": list(breakdown.bounds_applied),
                },
            ),
        )


@dataclass(frozen=True, slots=True)
class PartyConfig:
    """agreements: roaming agreements as ``"CPO/EMSP"`` party pairs (``"NL*ABC/DE*TNM"``; ``*`` alone on either
    side matches any party). Empty: the rule is off."""

    agreements: tuple[str, ...] = ()


class CdrPartyMismatch(Detector[PartyConfig]):
    """A CDR from a party without a roaming agreement, or for a token of an eMSP that has none with that CPO.

    Catches: a CDR whose issuer (``country_code*party_id``) appears in no configured agreement ("unexpected
    CPO"), or whose token's party (``cdr_token.country_code*party_id``) has no agreement with that CPO.

    Why it matters: CDRs injected through a hub under a foreign party id, or charging on tokens of a provider
    the CPO never contracted with, are billed to someone who never agreed to pay.

    False positives: an agreements list that is out of date; hubs that re-issue CDRs under their own party (list
    the hub as the CPO). Silent when no agreements are configured.

    References: OCPI 2.2.1 mod_cdrs (country_code, party_id, cdr_token), credentials module (roles and parties),
    OCPI 2.2.1 hub routing (OCPI-from-party-id).
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="cdr-party-mismatch",
        kinds=("cdr.party_mismatch",),
        title="CDR outside the roaming agreements",
        severity=Severity.HIGH,
        references=("OCPI 2.2.1 mod_cdrs", "OCPI 2.2.1 credentials"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (CdrReceived,)
    Config: ClassVar[type[Any]] = PartyConfig

    def __init__(self, config: PartyConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        pairs: list[tuple[str, str]] = []
        for text in config.agreements:
            cpo, sep, emsp = text.upper().partition("/")
            if not sep or not cpo.strip() or not emsp.strip():
                raise ConfigError(
                    f"cdr-party-mismatch: agreement {text!r} is not 'CPO/EMSP' (e.g. NL*ABC/DE*TNM)"
                )
            pairs.append((cpo.strip(), emsp.strip()))
        self._pairs = frozenset(pairs)
        self._cpos = frozenset(c for c, _ in pairs)

    def process(self, event: Event) -> Iterable[Finding]:
        if not isinstance(event, CdrReceived) or not self._pairs:
            return ()
        cpo, emsp = event.party.upper(), event.token_party.upper()
        if cpo not in self._cpos and "*" not in self._cpos:
            why = f"CDR from {cpo}, a party without any roaming agreement"
            problem = "unexpected_cpo"
        elif not {(cpo, emsp), (cpo, "*"), ("*", emsp)} & self._pairs:
            why = f"CDR from {cpo} for a token of {emsp}: no agreement between them"
            problem = "no_agreement"
        else:
            return ()
        return (
            self.finding(
                "cdr.party_mismatch",
                ts=event.ts,
                incident=f"{cpo}/{emsp}",
                summary=why,
                station=event.station,
                transactions=(event.key,),
                token_ref=event.token_ref,
                evidence={"cpo": cpo, "emsp": emsp, "problem": problem, "cdr": event.key},
            ),
        )
