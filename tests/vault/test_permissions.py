"""The vault principals file: grants by name (case-insensitive), refusals for unsafe or malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargeguard.errors import ConfigError
from chargeguard.vault.permissions import load_principals
from chargeguard.vault.sealed import PERMISSION_APPROVE, PERMISSION_REVEAL


def _file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "principals.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_grants_by_name_and_nothing_to_strangers(tmp_path: Path) -> None:
    principals = load_principals(
        _file(tmp_path, '[principals]\nAlice = ["vault.reveal"]\nbob = ["vault.approve"]\n')
    )
    alice = principals.principal(" alice ")
    assert alice.name == "alice" and alice.can(PERMISSION_REVEAL) and not alice.can(PERMISSION_APPROVE)
    assert principals.principal("BOB").can(PERMISSION_APPROVE)
    assert principals.principal("eve").permissions == frozenset()
    assert load_principals(tmp_path / "missing.toml").principal("alice").permissions == frozenset()


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        ('[principals]\nalice = ["vault.reveal"]\n', 0o620, "nobody but its owner"),
        ('[principals]\nalice = ["vault.reveal"]\n', 0o602, "nobody but its owner"),
        ('[principals]\nalice = ["vault.root"]\n', 0o600, "unknown permission"),
        ('[principals]\nalice = "vault.reveal"\n', 0o600, "list of permission names"),
        ('[principals]\nalice = []\nALICE = ["vault.reveal"]\n', 0o600, "appears twice"),
        ('[admins]\nalice = ["vault.reveal"]\n', 0o600, "a \\[principals\\] table of name"),
        ("[principals\n", 0o600, "not valid TOML"),
    ],
)
def test_unsafe_or_malformed_files_are_refused(tmp_path: Path, text: str, mode: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_principals(_file(tmp_path, text, mode))


def test_a_name_is_required(tmp_path: Path) -> None:
    principals = load_principals(_file(tmp_path, "[principals]\n"))
    for bad in ("", "   ", "x" * 129, "al\nice"):
        with pytest.raises(ConfigError, match="--by must name a person"):
            principals.principal(bad)
