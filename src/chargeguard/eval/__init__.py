"""Scoring alerts against ground truth: truth and alert records, matching, metrics, reports and injection."""
