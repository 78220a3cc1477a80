"""Rule detectors: deterministic, explainable checks, one behaviour each."""
