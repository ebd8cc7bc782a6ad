"""Docs that cannot rot: every config field and command is in the README."""

from __future__ import annotations

from pathlib import Path

from collector.config import CollectorConfig, RedactionConfig
from tracewatch.cli import build_parser

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_collector_option_is_documented() -> None:
    missing = [name for name in CollectorConfig.model_fields if name != "redaction" and f"`{name}`" not in README]
    missing += [
        f"redaction.{name}" for name in RedactionConfig.model_fields if f"`redaction.{name}`" not in README
    ]
    assert missing == []


def test_every_command_is_in_the_readme() -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices  # noqa: SLF001
    missing = [name for name in subcommands if f"tracewatch {name}" not in README and name != "demo"]
    assert missing == []
    assert "make demo" in README and "make test" in README


def test_every_alerts_option_is_documented() -> None:
    from alerts.config import AlertsConfig

    missing = [name for name in AlertsConfig.model_fields if name != "data_dir" and f"`alerts.{name}`" not in README]
    assert missing == []
