"""The scan pipeline: its batch GC setting (raised while a scan runs, restored after) and its event batches."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

import chargeguard.pipeline as pipeline_module
from chargeguard.errors import CaptureError
from chargeguard.events import Event
from chargeguard.inventory import load_inventory
from chargeguard.pipeline import ScanPipeline, batch_gc
from chargeguard.settings import Settings
from chargeguard.sources.capture import CaptureItem, parse_line
from chargeguard.vault.pseudonyms import Pseudonymiser
from golden_support import KEY, golden_alerts, write_inputs


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    old = gc.get_threshold()
    yield old
    gc.set_threshold(*old)


def test_young_threshold_is_raised_during_the_scan_and_restored(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)
    with batch_gc(50_000):
        assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_threshold_is_restored_when_the_scan_raises(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), batch_gc(50_000):
        raise RuntimeError("scan failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_disabled_automatic_collection_stays_disabled(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(0, 10, 10)
    with batch_gc(50_000):
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold()[0] == 0


def test_a_higher_threshold_is_kept(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(100_000, 10, 10)
    with batch_gc(50_000):
        assert gc.get_threshold()[0] == 100_000


@pytest.mark.parametrize("batch_events", [1, 7, 1000])
def test_alerts_do_not_depend_on_how_events_are_batched(
    batch_events: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the pipeline normalises a batch of lines before the engine takes their events: order, not timing, decides
    capture, stations = write_inputs(tmp_path)
    default = golden_alerts(capture, stations)
    assert len(default) >= 5
    monkeypatch.setattr(pipeline_module, "BATCH_EVENTS", batch_events)
    assert golden_alerts(capture, stations) == default


def test_events_read_before_a_capture_breaks_off_still_reach_the_engine(tmp_path: Path) -> None:
    capture, stations = write_inputs(tmp_path)
    seen: list[Event] = []
    pipeline = ScanPipeline(
        Settings(), Pseudonymiser(KEY, 1), inventory=load_inventory(stations), on_event=seen.append
    )
    lines = capture.read_bytes().splitlines()[:40]

    def breaking_off() -> Iterator[CaptureItem]:
        for number, line in enumerate(lines, 1):
            yield parse_line(line, f"capture:{number}")
        raise CaptureError("capture: the stream broke off")

    with pytest.raises(CaptureError):
        pipeline._feed_all(breaking_off(), None)
    assert pipeline.report.frames + pipeline.report.connection_lines > 0
    assert pipeline.engine.stats.events > 0  # the partial batch was processed, not dropped
