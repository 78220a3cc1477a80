"""Detectors: pure functions of an ordered event stream that emit findings (see base.py for the contract)."""
