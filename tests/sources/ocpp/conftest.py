"""Helpers for normaliser tests: feed capture dicts through a real Normaliser."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import pytest

from chargeguard.events import Event
from chargeguard.sources.capture import BadLine, ConnectionRecord, FrameRecord, parse_line
from chargeguard.sources.ocpp.normalize import Normaliser
from chargeguard.vault.pseudonyms import Pseudonymiser

KEY = {1: bytes(range(32))}


@pytest.fixture
def pseudo() -> Pseudonymiser:
    return Pseudonymiser(KEY, 1)


def normalise(lines: Iterable[dict[str, Any]], pseudo: Pseudonymiser | None = None) -> list[Event]:
    norm = Normaliser(pseudo or Pseudonymiser(KEY, 1))
    out: list[Event] = []
    for number, line in enumerate(lines, start=1):
        item = parse_line(orjson.dumps(line), f"test:{number}")
        if isinstance(item, FrameRecord):
            out.extend(norm.frame(item))
        elif isinstance(item, ConnectionRecord):
            out.extend(norm.connection(item))
        else:
            assert isinstance(item, BadLine)
            out.extend(norm.bad_line(item))
    return out
