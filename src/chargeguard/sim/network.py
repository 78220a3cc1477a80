"""The simulated network: cities, stations with their connectors and identities, drivers with habits, inventory."""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from chargeguard.sim.distributions import fitted


@dataclass(frozen=True, slots=True)
class City:
    code: str
    name: str
    region: str
    country: str
    latitude: float
    longitude: float
    radius_km: float
    weight: float


CITIES: tuple[City, ...] = (
    City("DND", "Dundee", "scotland-east", "GB", 56.4620, -2.9707, 6.0, 3.0),
    City("PTH", "Perth", "scotland-east", "GB", 56.3950, -3.4308, 5.0, 2.0),
    City("EDI", "Edinburgh", "scotland-east", "GB", 55.9533, -3.1883, 8.0, 3.0),
    City("GLA", "Glasgow", "scotland-west", "GB", 55.8642, -4.2518, 8.0, 3.0),
    City("TRD", "Trondheim", "trondelag", "NO", 63.4305, 10.3951, 7.0, 2.5),
    City("OSL", "Oslo", "oslo", "NO", 59.9139, 10.7522, 9.0, 3.0),
    City("LSN", "Lausanne", "leman", "CH", 46.5197, 6.6323, 5.0, 2.0),
    City("GVA", "Geneva", "leman", "CH", 46.2044, 6.1432, 6.0, 2.0),
    City("ZRH", "Zurich", "zurich", "CH", 47.3769, 8.5417, 7.0, 2.5),
    City("AMS", "Amsterdam", "randstad", "NL", 52.3676, 4.9041, 8.0, 3.0),
    City("MUC", "Munich", "bavaria", "DE", 48.1351, 11.5820, 9.0, 2.5),
)


@dataclass(frozen=True, slots=True)
class Hardware:
    vendor: str
    model: str
    firmware: tuple[str, ...]  # versions in release order, in the vendor's own format
    layout: tuple[tuple[str, float], ...]  # connectors: (AC/DC, max_kw)
    fw_host: str


HARDWARE: tuple[tuple[Hardware, float], ...] = (
    (
        Hardware(
            "Alfen BV",
            "NG910-60023",
            ("5.8.1-4123", "6.1.0-4159", "6.3.0-4197", "6.4.0-4210"),
            (("AC", 22.0), ("AC", 22.0)),
            "firmware.alfen.example",
        ),
        3.0,
    ),
    (
        Hardware(
            "ABB", "TAC-W22-T-0", ("1.5.0", "1.6.3", "1.6.7", "1.7.2"), (("AC", 22.0),), "fw.abb.example"
        ),
        2.0,
    ),
    (
        Hardware(
            "Wallbox",
            "Commander 2",
            ("5.5.10", "5.17.3", "5.17.33", "6.0.12"),
            (("AC", 7.4),),
            "update.wallbox.example",
        ),
        2.0,
    ),
    (
        Hardware(
            "Siemens",
            "VersiCharge AC",
            ("V3.28.1", "V3.30.3", "V3.31.0"),
            (("AC", 7.4), ("AC", 7.4)),
            "swupdate.siemens.example",
        ),
        2.0,
    ),
    (Hardware("Zaptec", "Pro", ("3.1.0.4", "3.2.1.2", "3.3.0.1"), (("AC", 11.0),), "fw.zaptec.example"), 1.5),
    (
        Hardware(
            "APT",
            "Triple Rapid Charger",
            ("R4.9.2", "R5.1.12", "R5.2.0"),
            (("DC", 50.0), ("DC", 50.0), ("AC", 22.0)),
            "fw.apt.example",
        ),
        2.0,
    ),
    (
        Hardware(
            "Tritium",
            "RTM75",
            ("RTM-2.2.4", "RTM-2.3.1", "RTM-2.4.0"),
            (("DC", 50.0),),
            "ota.tritium.example",
        ),
        1.0,
    ),
    (
        Hardware(
            "Kempower",
            "S-Series",
            ("v1.22.3", "v1.24.0", "v1.25.1"),
            (("DC", 150.0), ("DC", 150.0)),
            "fw.kempower.example",
        ),
        1.0,
    ),
    (
        Hardware(
            "Alpitronic",
            "HYC300",
            ("1.9.4", "1.10.0", "2.0.3"),
            (("DC", 150.0), ("DC", 150.0)),
            "fw.alpitronic.example",
        ),
        0.7,
    ),
    (
        Hardware(
            "Alpitronic",
            "HYC1000",
            ("2.0.3", "2.1.0"),
            (("DC", 350.0), ("DC", 350.0), ("DC", 350.0), ("DC", 350.0)),
            "fw.alpitronic.example",
        ),
        0.3,
    ),
)


def connector_class(kind: str, max_kw: float, city: City) -> str:
    """Which fitted session model applies to a connector."""
    if kind == "DC":
        return "dc50" if max_kw <= 60 else "dc150"
    if city.country == "NO" and max_kw <= 11:
        return "home"  # the Trondheim data are residential garages; Norway's AC posts behave like them
    return "ac22" if max_kw >= 20 else "ac7"


@dataclass(slots=True)
class Connector:
    connector_id: int
    evse_id: int
    kind: str  # AC or DC
    max_kw: float
    session_class: str
    register_wh: float
    busy_until: float = 0.0

    def wire_id(self, ocpp: str) -> str:
        return str(self.connector_id) if ocpp == "1.6" else f"{self.evse_id}/{self.connector_id}"


@dataclass(slots=True)
class Station:
    index: int
    station_id: str
    city: City
    latitude: float
    longitude: float
    ocpp: str
    hardware: Hardware
    firmware_index: int
    serial: str
    security_profile: int
    remote: str
    heartbeat_s: float
    location_id: str
    connectors: list[Connector]
    offline: list[tuple[float, float]] = field(default_factory=list)
    clock_shifts: list[tuple[float, float, float]] = field(default_factory=list)  # (from, to, offset_s)
    busy_until: float = 0.0  # station-wide work (reboot, firmware) that sessions must not overlap
    firmware_pinned: str | None = None  # set by incidents: the version it now runs; no benign updates after

    @property
    def firmware(self) -> str:
        if self.firmware_pinned is not None:
            return self.firmware_pinned
        return self.hardware.firmware[self.firmware_index]

    def offline_at(self, t: float) -> tuple[float, float] | None:
        for window in self.offline:
            if window[0] <= t < window[1]:
                return window
        return None

    def clock_at(self, t: float) -> float:
        for start, end, offset in self.clock_shifts:
            if start <= t < end:
                return offset
        return 0.0

    def prune(self, now: float) -> None:
        """Forget windows that ended long ago (bounded memory over long runs)."""
        self.offline = [w for w in self.offline if w[1] > now - 3 * 86400]
        self.clock_shifts = [w for w in self.clock_shifts if w[1] > now - 3 * 86400]


@dataclass(slots=True)
class Driver:
    token: str
    city: City
    preferred: list[int]  # station indices, most used first
    top_share: float
    rate_per_day: float
    habit_hour: int
    prefers_dc: bool
    busy_until: float = 0.0
    last_city: str = ""


@dataclass(slots=True)
class Network:
    stations: list[Station]
    drivers: list[Driver]
    by_city: dict[str, list[int]]


def _point(rng: random.Random, city: City) -> tuple[float, float]:
    r = city.radius_km * math.sqrt(rng.random())
    a = rng.random() * 2 * math.pi
    lat = city.latitude + (r * math.cos(a)) / 111.2
    lon = city.longitude + (r * math.sin(a)) / (111.2 * math.cos(math.radians(city.latitude)))
    return round(lat, 6), round(lon, 6)


def new_token(rng: random.Random) -> str:
    """A raw RFID UID as stations send it: 4-byte or 7-byte, upper-case hex."""
    size = 7 if rng.random() < 0.7 else 4
    first = 0x04 if size == 7 else rng.randrange(0x10, 0xFF)
    return f"{first:02X}" + "".join(f"{rng.randrange(256):02X}" for _ in range(size - 1))


def build_network(rng: random.Random, stations: int, ocpp: str, drivers_per_station: float = 8.0) -> Network:
    """A network of ``stations`` stations in clusters around the cities, and its driver population."""
    cities = list(CITIES)
    weights = [c.weight for c in cities]
    hardware = [h for h, _ in HARDWARE]
    hw_weights = [w for _, w in HARDWARE]
    built: list[Station] = []
    by_city: dict[str, list[int]] = {c.code: [] for c in cities}
    for index in range(stations):
        city = (
            cities[index]
            if index < len(cities) and stations >= len(cities)
            else rng.choices(cities, weights)[0]
        )
        hw = rng.choices(hardware, hw_weights)[0]
        version = ocpp if ocpp in ("1.6", "2.0.1") else ("2.0.1" if rng.random() < 0.35 else "1.6")
        lat, lon = _point(rng, city)
        register = rng.uniform(0, 4_000_000)
        connectors = [
            Connector(
                connector_id=(i + 1) if version == "1.6" else 1,
                evse_id=i + 1,
                kind=kind,
                max_kw=max_kw,
                session_class=connector_class(kind, max_kw, city),
                register_wh=round(register * rng.uniform(0.5, 1.0)),
            )
            for i, (kind, max_kw) in enumerate(hw.layout)
        ]
        station = Station(
            index=index,
            station_id=f"{city.code}{index:05d}",
            city=city,
            latitude=lat,
            longitude=lon,
            ocpp=version,
            hardware=hw,
            firmware_index=rng.randrange(max(1, len(hw.firmware) - 1)),
            serial=f"{hw.vendor[:3].upper()}{rng.randrange(10**8):08d}",
            security_profile=rng.choice((1, 2, 2, 3)) if version == "1.6" else rng.choice((2, 3)),
            remote=f"{rng.choice((198, 203, 100))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            heartbeat_s=float(rng.choice((300, 600, 900, 1800, 3600))),
            location_id=f"LOC-{city.code}-{index // 3:05d}",
            connectors=connectors,
        )
        built.append(station)
        by_city[city.code].append(index)
    habits = fitted().habits
    population: list[Driver] = []
    occupied = [c for c in cities if by_city[c.code]]
    for _ in range(max(1, round(stations * drivers_per_station))):
        city = rng.choices(occupied, [c.weight * len(by_city[c.code]) for c in occupied])[0]
        local = by_city[city.code]
        distinct = max(1, min(len(local), round(habits.distinct_stations.at(rng.random()))))
        population.append(
            Driver(
                token=new_token(rng),
                city=city,
                preferred=rng.sample(local, distinct),
                top_share=habits.top_station_share.at(rng.random()),
                rate_per_day=habits.sessions_per_day.at(rng.random()),
                habit_hour=rng.choices(range(24), weights=fitted().classes["ac7"].hours_weekday)[0],
                prefers_dc=rng.random() < 0.35,
                last_city=city.code,
            )
        )
    return Network(stations=built, drivers=population, by_city=by_city)


INVENTORY_HEADER = (
    "station",
    "latitude",
    "longitude",
    "max_kw",
    "connectors",
    "location_id",
    "country",
    "connector_id",
    "connector_type",
)


def write_inventory(network: Network, path: Path) -> None:
    """stations.csv in the inventory format: one whole-station row, then one row per connector."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(INVENTORY_HEADER)
        for st in network.stations:
            common = [st.latitude, st.longitude]
            writer.writerow(
                [
                    st.station_id,
                    *common,
                    max(c.max_kw for c in st.connectors),
                    len(st.connectors),
                    st.location_id,
                    st.city.country,
                    "",
                    "",
                ]
            )
            for c in st.connectors:
                writer.writerow(
                    [
                        st.station_id,
                        *common,
                        c.max_kw,
                        1,
                        st.location_id,
                        st.city.country,
                        c.wire_id(st.ocpp),
                        c.kind,
                    ]
                )
