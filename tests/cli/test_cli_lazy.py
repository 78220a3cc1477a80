"""The command table used to import one module per run matches what each module really registers."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.main import get_command
from typer.testing import CliRunner

from chargeguard import cli


def _top_level_names(app: typer.Typer) -> list[str]:
    group = get_command(app)
    assert hasattr(group, "commands")
    return list(group.commands)


def test_each_module_registers_exactly_the_commands_the_table_gives_it() -> None:
    for module, commands in cli.COMMAND_MODULES.items():
        assert _top_level_names(cli.build_app((module,))) == list(commands), module


def test_full_app_lists_every_command() -> None:
    expected = [c for commands in cli.COMMAND_MODULES.values() for c in commands]
    assert sorted(_top_level_names(cli.app)) == sorted(expected)
    result = CliRunner().invoke(cli.app, ["--help"])
    assert result.exit_code == 0
    for command in expected:
        assert command in result.output


def test_a_single_command_module_keeps_its_command_name() -> None:
    result = CliRunner().invoke(cli.build_app(("reconcile",)), ["reconcile", "--help"])
    assert result.exit_code == 0, result.output
    assert "--cpo" in result.output


def test_running_scan_does_not_import_the_web_stack() -> None:
    code = (
        "import sys\n"
        "from chargeguard import cli\n"
        "sys.argv = ['chargeguard', 'detectors']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "assert 'fastapi' not in sys.modules and 'chargeguard.cli.gateway' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
