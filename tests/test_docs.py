"""The README documents every command and option, and its test command is the one CI runs."""

import re
from pathlib import Path

import pytest
import typer

from dlbench import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
COMMANDS = typer.main.get_command(cli.app).commands


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_and_option_is_in_the_readme(name):
    assert f"dlbench {name}" in README
    for param in COMMANDS[name].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt != "--help":
                assert opt in README, f"dlbench {name} {opt} is not documented in README.md"


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    extras = re.search(r"pip install --quiet -e '(\.\[[a-z,]+\])'", ci).group(1)
    assert f".venv/bin/pip install -e '{extras}' && .venv/bin/python -m pytest" in README
    assert "python -m pytest" in ci


def test_the_claim_catalogue_page_is_current():
    from dlbench import catalogue

    page = (ROOT / "docs" / "claims.md").read_text()
    assert page == catalogue.markdown(), "docs/claims.md is out of date: python -m dlbench.catalogue docs/claims.md"


def test_every_claim_on_the_protocol_names_its_measurement_control_threshold_and_literature():
    from dlbench import catalogue

    for experiment, spec in catalogue.rows():
        if spec.control:  # on the protocol
            for field in ("measures", "threshold", "literature"):
                assert getattr(spec, field), f"{spec.id} ({experiment}) has no {field}"
