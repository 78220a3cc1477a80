"""Simulator test fixtures: validators for the official OCPP JSON schemas that the ``ocpp`` package ships."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import ocpp
import pytest

_ROOT = Path(ocpp.__file__).parent


@cache
def _validator(version: str, action: str, result: bool) -> jsonschema.protocols.Validator:
    if version == "1.6":
        path = _ROOT / "v16" / "schemas" / f"{action}{'Response' if result else ''}.json"
    else:
        path = _ROOT / "v201" / "schemas" / f"{action}{'Response' if result else 'Request'}.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)  # type: ignore[no-any-return]


def validate_lines(lines: Iterable[dict[str, Any]], per_kind: int = 60) -> set[tuple[str, str, bool]]:
    """Validate frames against their schemas, the first ``per_kind`` of each (version, action, is_result) kind
    and every kind seen; return the kinds seen."""
    calls: dict[tuple[str, str, str], str] = {}
    seen: Counter[tuple[str, str, bool]] = Counter()
    for line in lines:
        if "frame" not in line:
            continue
        frame = line["frame"]
        key = (line["station"], line["from"], frame[1])
        if frame[0] == 2:
            calls[key] = frame[2]
            kind = (line["ocpp"], frame[2], False)
            seen[kind] += 1
            if seen[kind] <= per_kind:
                errors = list(_validator(line["ocpp"], frame[2], False).iter_errors(frame[3]))
                assert not errors, (line, errors[0].message)
        elif frame[0] == 3:
            caller = "csms" if line["from"] == "station" else "station"
            action = calls.pop((line["station"], caller, frame[1]))
            kind = (line["ocpp"], action, True)
            seen[kind] += 1
            if seen[kind] <= per_kind:
                errors = list(_validator(line["ocpp"], action, True).iter_errors(frame[2]))
                assert not errors, (line, errors[0].message)
    return set(seen)


@pytest.fixture
def validate() -> Callable[[Iterable[dict[str, Any]]], set[tuple[str, str, bool]]]:
    return validate_lines
