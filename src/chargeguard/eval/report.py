"""Rendering an Evaluation: rich tables for the terminal and Markdown tables for docs/evaluation.md."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from chargeguard.eval.metrics import Evaluation, KindScore

COLUMNS = (
    "kind",
    "incidents",
    "recall",
    "alerts",
    "precision",
    "F1",
    "delay p50 s",
    "delay p95 s",
    "false/1k sess",
)


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def row_cells(score: KindScore) -> list[str]:
    return [
        score.kind,
        str(score.incidents),
        fmt_ratio(score.recall),
        str(score.alerts),
        fmt_ratio(score.precision),
        fmt_ratio(score.f1),
        fmt_seconds(score.delay_median_s),
        fmt_seconds(score.delay_p95_s),
        fmt_rate(score.false_per_1000_sessions),
    ]


def rich_table(title: str, scores: Sequence[KindScore], overall: KindScore | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if i == 0 else "right")
    for score in scores:
        table.add_row(*row_cells(score))
    if overall is not None:
        table.add_section()
        table.add_row(*row_cells(overall), style="bold")
    return table


def print_evaluation(evaluation: Evaluation, console: Console) -> None:
    """The terminal report: the rule table, the subtle table (when any) and the error/sessions footnote."""
    console.print(rich_table("Rule-detectable incidents", evaluation.kinds, evaluation.overall))
    if evaluation.subtle:
        console.print(rich_table("Subtle incidents (not rule targets)", evaluation.subtle))
    sessions = "unknown" if evaluation.sessions is None else str(evaluation.sessions)
    console.print(f"sessions: {sessions}; grace: {evaluation.grace_s:.0f} s")


def markdown_table(scores: Sequence[KindScore], overall: KindScore | None = None) -> str:
    """A GitHub-flavoured Markdown table with the same columns as the terminal table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + "|"]
    for score in scores:
        lines.append("| " + " | ".join(row_cells(score)) + " |")
    if overall is not None:
        lines.append("| " + " | ".join(f"**{c}**" for c in row_cells(overall)) + " |")
    return "\n".join(lines)
