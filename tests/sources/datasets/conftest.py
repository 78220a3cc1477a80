"""Fixtures for dataset importer tests: slices of the real datasets and OCPP schema validation of frames."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import ocpp
import pytest

DATASETS = Path(__file__).resolve().parents[3].parent / "shared" / "datasets"
_SCHEMAS = Path(ocpp.__file__).parent


def real(relative: str) -> Path:
    path = DATASETS / relative
    if not path.exists():
        pytest.skip(f"dataset file {relative} not available")
    return path


def slice_file(
    src: Path, dst: Path, rows: int, *, extra: Iterable[str] = (), encoding: str = "utf-8"
) -> Path:
    """The header and the first ``rows`` data lines of a real file, plus ``extra`` lines appended verbatim."""
    with src.open(encoding=encoding, newline="") as handle:
        lines = [handle.readline() for _ in range(rows + 1)]
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(lines) + "".join(extra), encoding=encoding, newline="")
    return dst


def read_capture(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@cache
def _validator(version: str, action: str, result: bool) -> Any:
    if version == "1.6":
        path = _SCHEMAS / "v16" / "schemas" / f"{action}{'Response' if result else ''}.json"
    else:
        path = _SCHEMAS / "v201" / "schemas" / f"{action}{'Response' if result else 'Request'}.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate_frames(lines: Iterable[dict[str, Any]]) -> int:
    """Validate every CALL and CALLRESULT against the official schema of its action; returns frames checked."""
    calls: dict[tuple[str, str, str], str] = {}
    checked = 0
    for line in lines:
        if "frame" not in line:
            assert line["event"] in ("connect", "disconnect", "auth_failed", "action")
            continue
        frame = line["frame"]
        if frame[0] == 2:
            calls[(line["station"], line["from"], frame[1])] = frame[2]
            errors = list(_validator(line["ocpp"], frame[2], False).iter_errors(frame[3]))
        else:
            assert frame[0] == 3, line
            caller = "csms" if line["from"] == "station" else "station"
            action = calls.pop((line["station"], caller, frame[1]))
            errors = list(_validator(line["ocpp"], action, True).iter_errors(frame[2]))
        assert not errors, (line, errors[0].message)
        checked += 1
    return checked


def transaction_starts(lines: Iterable[dict[str, Any]]) -> int:
    count = 0
    for line in lines:
        frame = line.get("frame")
        if not frame or frame[0] != 2 or line["from"] != "station":
            continue
        if frame[2] == "StartTransaction" or (
            frame[2] == "TransactionEvent" and frame[3]["eventType"] == "Started"
        ):
            count += 1
    return count


class DatasetHelpers:
    """The helpers above, handed to tests as the ``ds`` fixture (test directories are not packages)."""

    real = staticmethod(real)
    slice_file = staticmethod(slice_file)
    read_capture = staticmethod(read_capture)
    validate_frames = staticmethod(validate_frames)
    transaction_starts = staticmethod(transaction_starts)


@pytest.fixture
def ds() -> DatasetHelpers:
    return DatasetHelpers()
