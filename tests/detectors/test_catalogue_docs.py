"""docs/detectors.md is generated from the detectors and must stay in sync with them."""

from __future__ import annotations

from pathlib import Path

from chargeguard.detectors.catalogue import catalogue_rows, render_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "detectors.md"


def test_every_detector_documents_itself() -> None:
    for row in catalogue_rows():
        assert len(row["doc"]) > 200, (
            f"{row['name']} needs a docstring: what, why, false positives, references"
        )


def test_generated_catalogue_is_committed() -> None:
    assert DOC.read_text(encoding="utf-8") == render_markdown(), "run scripts/gen-detector-docs"
