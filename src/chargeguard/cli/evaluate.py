"""CLI commands: ``chargeguard eval`` (alerts scored against ground truth) and ``import-sessions``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import structlog
import typer
from rich.console import Console

from chargeguard.errors import ChargeguardError, ConfigError, InputError
from chargeguard.eval.inject import PlannedIncident, inject, real_oddity_sessions
from chargeguard.eval.matching import DEFAULT_GRACE_S
from chargeguard.eval.metrics import evaluate
from chargeguard.eval.records import load_alerts, load_truth
from chargeguard.eval.report import print_evaluation
from chargeguard.eval.sessions import count_sessions
from chargeguard.logs import configure_logging
from chargeguard.sim.real_injection import inject_station_incidents
from chargeguard.sources.datasets.registry import FORMATS, import_dataset
from chargeguard.sources.datasets.render import OCPP_CHOICES, RenderOptions, write_import_full

log = structlog.get_logger("chargeguard.cli.evaluate")

MAX_EXAMPLES = 5
PIPE_WIDTH = 200  # tables piped to files or tests are not wrapped at 80 columns


def make_console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=PIPE_WIDTH)


def report_errors(console: Console, label: str, errors: list[InputError]) -> None:
    """A few examples (file:line and reason), then the count."""
    for error in errors[:MAX_EXAMPLES]:
        console.print(f"[yellow]bad {label} line[/] {error}", markup=True, highlight=False)
    if len(errors) > MAX_EXAMPLES:
        console.print(f"... and {len(errors) - MAX_EXAMPLES} more bad {label} line(s)")
    if errors:
        console.print(f"{len(errors)} bad {label} line(s) skipped; the rest was evaluated")


def eval_command(
    truth: Annotated[Path, typer.Option("--truth", help="Ground truth JSON Lines (plain or .gz).")],
    alerts: Annotated[Path, typer.Option("--alerts", help="Alerts JSON Lines (scan --alerts).")],
    sessions: Annotated[
        int | None,
        typer.Option("--sessions", min=1, help="Sessions, for false alerts/1k."),
    ] = None,
    capture: Annotated[
        Path | None, typer.Option("--capture", help="Count sessions from this capture instead of --sessions.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write JSON here ('-' = stdout).")] = None,
    grace_s: Annotated[
        float,
        typer.Option("--grace", min=0.0, help="Grace around incident windows, s."),
    ] = DEFAULT_GRACE_S,
) -> None:
    """Match alerts to labelled incidents; report recall, precision, F1, delay and false alerts per kind."""
    configure_logging("warning", "json")
    to_stdout = json_out is not None and str(json_out) == "-"
    console = make_console(stderr=to_stdout)
    err = make_console(stderr=True)
    if sessions is not None and capture is not None:
        raise typer.BadParameter("give either --sessions or --capture, not both")
    try:
        truth_loaded = load_truth(truth)
        alerts_loaded = load_alerts(alerts)
        session_count = count_sessions(capture) if capture is not None else sessions
    except ChargeguardError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    report_errors(err, "truth", truth_loaded.errors)
    report_errors(err, "alert", alerts_loaded.errors)
    if not truth_loaded.records and truth_loaded.errors:
        err.print("[red]error:[/] no usable truth line", highlight=False)
        raise typer.Exit(1)
    result = evaluate(truth_loaded.records, alerts_loaded.records, sessions=session_count, grace_s=grace_s)
    log.info(
        "eval.done",
        incidents=len(truth_loaded.records),
        alerts=len(alerts_loaded.records),
        bad_truth_lines=truth_loaded.bad_lines,
        bad_alert_lines=alerts_loaded.bad_lines,
    )
    print_evaluation(result, console)
    if json_out is not None:
        payload = result.to_json()
        payload["bad_lines"] = {
            "truth": truth_loaded.bad_lines,
            "alerts": alerts_loaded.bad_lines,
            "examples": [str(e) for e in (truth_loaded.errors + alerts_loaded.errors)[:20]],
        }
        data = orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n"
        if to_stdout:
            typer.echo(data.decode("utf-8"), nl=False)
        else:
            json_out.write_bytes(data)


def import_sessions_command(
    inputs: Annotated[list[Path], typer.Argument(help="Dataset files or directories.")],
    out: Annotated[
        Path, typer.Option("--out", help="Directory for capture.jsonl, stations.csv and reports.")
    ],
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")],
    mapping: Annotated[
        Path | None, typer.Option("--mapping", help="Column mapping (TOML/JSON), csv only.")
    ] = None,
    ocpp: Annotated[str, typer.Option("--ocpp", help="1.6, 2.0.1 or mix (one version per station).")] = "mix",
    seed: Annotated[int, typer.Option("--seed", help="Seed of tokens, registers and timing jitter.")] = 0,
    sample_interval_s: Annotated[
        float, typer.Option("--sample-interval", min=0.0, help="Seconds between MeterValues (0 = none).")
    ] = 300.0,
    time_resolution_s: Annotated[
        float,
        typer.Option("--time-resolution", min=0.0, help="Resolution of the dataset's times, s (0: exact)."),
    ] = 60.0,
    inject_per_kind: Annotated[
        int, typer.Option("--inject", min=0, help="Inject N labelled incidents per kind; writes truth.jsonl.")
    ] = 0,
    inject_station_per_kind: Annotated[
        int,
        typer.Option(
            "--inject-station",
            min=0,
            help="Also inject N incidents per station/command/protocol kind (and session.phantom) beside the "
            "real stations' traffic; appends to truth.jsonl.",
        ),
    ] = 0,
    incident_set: Annotated[
        str, typer.Option("--incident-set", help="Incident variants for --inject-station: tuning or holdout.")
    ] = "tuning",
) -> None:
    """Turn a public charging-session dataset into an OCPP capture with a station inventory."""
    configure_logging("warning", "json")
    err = make_console(stderr=True)
    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    if ocpp not in OCPP_CHOICES:
        raise typer.BadParameter(f"--ocpp must be one of {', '.join(OCPP_CHOICES)}")
    if incident_set not in ("tuning", "holdout"):
        raise typer.BadParameter("--incident-set must be tuning or holdout")
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        err.print(f"[red]error:[/] input not found: {', '.join(missing)}", highlight=False)
        raise typer.Exit(1)
    try:
        data = import_dataset(fmt, inputs, mapping=mapping)
    except ChargeguardError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from exc
    if not data.sessions:
        for problem in data.problems[:MAX_EXAMPLES]:
            err.print(f"[yellow]unparsable row[/] {problem}", highlight=False)
        err.print("[red]error:[/] no session could be read", highlight=False)
        raise typer.Exit(1)
    options = RenderOptions(
        ocpp=ocpp, seed=seed, sample_interval_s=sample_interval_s, time_resolution_s=time_resolution_s
    )
    planned: list[PlannedIncident] = []
    if inject_per_kind:
        excluded = real_oddity_sessions(data)
        data, planned = inject(
            data, per_kind=inject_per_kind, seed=seed, sample_interval_s=sample_interval_s, excluded=excluded
        )
    report, rendered = write_import_full(data, out, options, inputs)
    if inject_per_kind:
        truth = b"".join(orjson.dumps(p.truth(rendered.transaction_ids)) + b"\n" for p in planned)
        (out / "truth.jsonl").write_bytes(truth)
        err.print(f"{len(planned)} incidents injected -> {out / 'truth.jsonl'}", highlight=False)
    if inject_station_per_kind:
        try:
            injected = inject_station_incidents(
                out,
                per_kind=inject_station_per_kind,
                seed=seed,
                incidents=incident_set,
                sample_interval_s=sample_interval_s,
            )
        except ChargeguardError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from exc
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(injected.skipped.items()) if v) or "none"
        err.print(
            f"{len(injected.truths)} {incident_set} station/command/protocol incidents injected -> "
            f"{out / 'truth.jsonl'} (skipped: {skipped})",
            highlight=False,
        )
    for problem in data.problems[:MAX_EXAMPLES]:
        err.print(f"[yellow]unparsable row[/] {problem}", highlight=False)
    if len(data.problems) > MAX_EXAMPLES:
        err.print(f"... and {len(data.problems) - MAX_EXAMPLES} more unparsable row(s)")
    for note in data.notes:
        err.print(f"note: {note}", highlight=False)
    odd = ", ".join(f"{k} {v}" for k, v in report["oddities"].items()) or "none"
    err.print(
        f"{report['sessions']} sessions ({report['open_sessions']} never stopped) at {report['stations']} "
        f"stations -> {report['frames']} frames in {out / 'capture.jsonl'}; {report['unparsable_rows']} "
        f"unparsable row(s); oddities: {odd}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("eval")(eval_command)
    app.command("import-sessions")(import_sessions_command)
