"""Reconciliation reports: a rich terminal summary, CSV files, and a self-contained HTML page with inline SVG charts."""

from __future__ import annotations

import csv
import html
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chargeguard.reconcile.match import Reconciliation
from chargeguard.reconcile.prices import Repriced

_CATEGORIES = (
    ("matched_by_id", "matched by id"),
    ("matched_fuzzy", "matched by token+EVSE+start+energy"),
    ("disputed", "disputed"),
    ("unmatched_cpo", "only at the CPO"),
    ("unmatched_emsp", "only at the eMSP"),
    ("errors_cpo", "bad records (CPO file)"),
    ("errors_emsp", "bad records (eMSP file)"),
)


def print_summary(
    result: Reconciliation, console: Console, repriced: Sequence[Repriced] = (), top: int = 10
) -> None:
    counts = Table(title="Reconciliation", show_header=True)
    counts.add_column("records")
    counts.add_column("count", justify="right")
    for name, label in _CATEGORIES:
        counts.add_row(label, f"{result.counts.get(name, 0):,}")
    if "cpo_without_ocpp_transaction" in result.counts:
        counts.add_row(
            "CPO CDRs with no OCPP transaction", f"{result.counts['cpo_without_ocpp_transaction']:,}"
        )
    console.print(counts)
    stakes = Table(title="Amount at stake (per currency; never summed across currencies)")
    for col in ("currency", "scope", "party", "records", "amount"):
        stakes.add_column(col, justify="right" if col in ("records", "amount") else "left")
    for currency, scope, party, n, amount in result.stakes:
        stakes.add_row(currency, scope, party, f"{n:,}", f"{amount:,.2f}")
    console.print(stakes)
    disputes = result.disputes(top)
    if disputes:
        table = Table(title=f"Largest disputes (top {top})")
        for col in ("CPO record", "eMSP record", "why", "CPO", "eMSP", "at stake"):
            table.add_column(col)
        for d in disputes:
            table.add_row(
                d["cpo_key"], d["emsp_key"], d["reasons"], f"{d['cpo_cost']:.2f} {d['cpo_currency']}",
                f"{d['emsp_cost']:.2f} {d['emsp_currency']}", f"{d['stake']:.2f} {d['currency']}",
            )  # fmt: skip
        console.print(table)
    if repriced:
        verdicts: dict[str, int] = {}
        for r in repriced:
            verdicts[r.verdict.split(":")[0]] = verdicts.get(r.verdict.split(":")[0], 0) + 1
        console.print("tariff engine verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())))
    errors = result.errors(5)
    total_errors = result.counts.get("errors_cpo", 0) + result.counts.get("errors_emsp", 0)
    for side, file, position, ident, reason in errors:
        where = escape(f"{file} {position}{f' ({ident})' if ident else ''}")
        console.print(f"[yellow]bad record[/] ({side} file) {where}: {escape(reason)}")
    if total_errors > len(errors):
        console.print(f"... and {total_errors - len(errors)} more bad records (see errors.csv)")


def write_csv(result: Reconciliation, out: Path, repriced: Sequence[Repriced] = ()) -> list[Path]:
    """disputes.csv, unmatched.csv, errors.csv and stakes.csv (and repriced.csv) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    tables = ["disputes", "unmatched", "errors"]
    if "cpo_without_ocpp_transaction" in result.counts:
        tables.append("uncovered")
    for table in tables:
        path = out / f"{table}.csv"
        literal = "'" + str(path).replace("'", "''") + "'"
        result.con.execute(f"COPY (SELECT * FROM {table}) TO {literal} (HEADER, DELIMITER ',')")  # noqa: S608
        written.append(path)
    path = out / "stakes.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["currency", "scope", "party", "records", "amount"])
        writer.writerows([c, s, p, n, f"{a:.4f}"] for c, s, p, n, a in result.stakes)
    written.append(path)
    if repriced:
        path = out / "repriced.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["key", "tariff_excl_vat", "verdict", "explanation"])
            for r in repriced:
                writer.writerow([r.key, "" if r.tariff_excl_vat is None else f"{r.tariff_excl_vat:.4f}", r.verdict,
                                 r.explanation])  # fmt: skip
        written.append(path)
    return written


def _bars(items: Sequence[tuple[str, float]], *, unit: str = "", width: int = 640) -> str:
    """A horizontal bar chart as inline SVG."""
    if not items:
        return "<p>nothing to show</p>"
    top = max(v for _, v in items) or 1.0
    row, label_w = 26, 260
    height = row * len(items) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for i, (label, value) in enumerate(items):
        y = 5 + i * row
        w = max(1.0, (width - label_w - 120) * value / top)
        parts.append(f'<text x="0" y="{y + 16}" font-size="13">{html.escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="18" fill="#3b6ea5"/>')
        parts.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="13">{value:,.2f}{html.escape(unit)}</text>'
            if unit
            else f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="13">{int(value):,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def write_html(result: Reconciliation, path: Path, repriced: Sequence[Repriced] = (), top: int = 50) -> Path:
    """One self-contained HTML file (no script, no CDN): counts, amounts at stake per party, top disputes."""
    e = html.escape
    counts = [(label, float(result.counts.get(name, 0))) for name, label in _CATEGORIES]
    if "cpo_without_ocpp_transaction" in result.counts:
        counts.append(
            ("CPO CDRs with no OCPP transaction", float(result.counts["cpo_without_ocpp_transaction"]))
        )
    sections = [f"<h2>Records</h2>{_bars(counts)}"]
    for currency in sorted({s[0] for s in result.stakes}):
        rows = [(f"{scope.upper()} {party}", float(a)) for c, scope, party, _, a in result.stakes if c == currency
                and scope != "total"]  # fmt: skip
        total = next((a for c, s, _, _, a in result.stakes if c == currency and s == "total"), 0)
        sections.append(
            f"<h2>At stake in {e(currency)}: {total:,.2f}</h2>{_bars(rows[:20], unit=' ' + currency)}"
        )
    head = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in ("CPO record", "eMSP record", "why", "CPO", "eMSP",
                                                          "at stake", "token")) + "</tr>"  # fmt: skip
    body = "".join(
        f"<tr><td>{e(d['cpo_key'])}</td><td>{e(d['emsp_key'])}</td><td>{e(d['reasons'])}</td>"
        f"<td>{d['cpo_cost']:.2f} {e(d['cpo_currency'])}</td><td>{d['emsp_cost']:.2f} {e(d['emsp_currency'])}</td>"
        f"<td>{d['stake']:.2f} {e(d['currency'])}</td><td>{e(d['token_ref'])}</td></tr>"
        for d in result.disputes(top)
    )
    sections.append(f"<h2>Largest disputes</h2><table>{head}{body}</table>")
    if repriced:
        rows_html = "".join(
            f"<tr><td>{e(r.key)}</td><td>{'' if r.tariff_excl_vat is None else f'{r.tariff_excl_vat:.2f}'}</td>"
            f"<td>{e(r.verdict)}</td><td>{e(r.explanation)}</td></tr>"
            for r in repriced[:top]
        )
        sections.append(f"<h2>Tariff engine</h2><table><tr><th>record</th><th>tariff</th><th>verdict</th>"
                        f"<th>why</th></tr>{rows_html}</table>")  # fmt: skip
    errors = "".join(
        f"<li>{e(file)} {e(pos)}{f' ({e(ident)})' if ident else ''}: {e(reason)}</li>"
        for _, file, pos, ident, reason in result.errors(top)
    )
    sections.append(f"<h2>Bad records</h2><ul>{errors or '<li>none</li>'}</ul>")
    doc = (
        "<!doctype html><html><head><meta charset='utf-8'><title>chargeguard reconciliation</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:3px 6px;font-size:13px}</style></head><body>"
        f"<h1>Reconciliation: {e(result.cpo_file.name)} (CPO) vs {e(result.emsp_file.name)} (eMSP)</h1>"
        + "".join(sections)
        + "</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
