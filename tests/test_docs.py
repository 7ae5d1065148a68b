"""The README documents every setting, and the quickstart's names exist."""

from __future__ import annotations

from pathlib import Path

import traceyard
from traceyard.config import ENV_PREFIX, Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    missing = [
        f"{ENV_PREFIX}{name.upper()}"
        for name in Settings.model_fields
        if f"| `{ENV_PREFIX}{name.upper()}` |" not in README
    ]
    assert missing == []


def test_every_setting_has_a_description() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_public_names_used_in_the_readme_exist() -> None:
    for name in ("Tracer", "observe", "trace", "update_current_trace", "Settings"):
        assert name in README
        assert hasattr(traceyard, name)
    assert sorted(traceyard.__all__) == traceyard.__all__
