"""The documentation: a short README whose commands are what CI runs, and option references in docs/
that are generated from the code and current."""

import re
import shutil
from pathlib import Path

import pytest
import typer

from dlbench import cli, docs, experiments

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
COMMANDS = typer.main.get_command(cli.app).commands
#: Pages that their own authors provide (the kernels and their speed, the layers and models);
#: links to them are allowed before they are written.
ELSEWHERE = {"docs/kernels.md", "docs/models.md"}


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    extras = re.search(r"pip install --quiet -e '(\.\[[a-z,]+\])'", ci).group(1)
    assert f".venv/bin/pip install -e '{extras}' && .venv/bin/python -m pytest" in README
    assert "python -m pytest" in ci


def test_readme_quick_start_runs_the_flagship_experiment():
    assert "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/dlbench optimizers --surface canyon" in README


def test_readme_is_what_a_newcomer_reads():
    assert len(README.splitlines()) < 300
    for verdict in ("supported", "refuted", "inconclusive", "conditional", "not run"):
        assert f"`{verdict}`" in README
    for word in ("control", "sensitivity", "checks"):
        assert f"**{word}**" in README


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_in_the_readme_and_every_option_in_the_docs(name):
    assert f"`dlbench {name}" in README
    page = ROOT / "docs" / "experiments" / f"{name}.md"
    text = (page if page.exists() else ROOT / "docs" / "commands.md").read_text()
    shared = (ROOT / "docs" / "commands.md").read_text()
    for param in COMMANDS[name].params:
        for opt in [*param.opts, *getattr(param, "secondary_opts", [])]:
            if opt.startswith("--") and opt != "--help":
                word = re.compile(rf"(?<![\w-]){re.escape(opt)}(?![\w-])")
                assert word.search(text) or word.search(shared), f"dlbench {name} {opt} is in no generated reference"


def test_generated_pages_are_current():
    stale = docs.update(ROOT, check=True)
    assert stale == [], f"out of date: {', '.join(map(str, stale))}; run: python -m dlbench.docs"


def test_every_experiment_has_its_page():
    for name in experiments.names():
        text = (ROOT / "docs" / "experiments" / f"{name}.md").read_text()
        assert docs.BEGIN.format(name="options") in text
        assert f"](docs/experiments/{name}.md)" in README


def test_a_changed_option_makes_its_page_stale(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "experiments" / "depth.md"
    text = page.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `--"))   # the first option's row
    page.write_text(text.replace(row, row.replace("`--", "`--stale-", 1), 1))
    assert docs.update(tmp_path, check=True) == [Path("docs/experiments/depth.md")]
    assert docs.update(tmp_path) == [Path("docs/experiments/depth.md")]
    assert page.read_text() == text and docs.update(tmp_path, check=True) == []


def test_prose_outside_the_blocks_is_left_alone(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "commands.md"
    page.write_text(page.read_text() + "\nA paragraph written by hand.\n")
    assert docs.update(tmp_path) == []
    assert page.read_text().endswith("A paragraph written by hand.\n")


def test_a_new_experiment_gets_a_page_with_its_options(tmp_path, monkeypatch):
    import toy_experiment

    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    monkeypatch.setattr(experiments, "MODULES", {**experiments.MODULES, "toy": "toy_experiment"})
    stale = docs.update(tmp_path)
    assert Path("docs/experiments/toy.md") in stale and Path("docs/commands.md") in stale
    text = (tmp_path / "docs" / "experiments" / "toy.md").read_text()
    assert toy_experiment.HELP in text
    assert "| `--steps N` | `100` | `10` | Steps. Range: at least 1. |" in text
    assert "| `--shape NAME` | `bowl` |  | Which shape. One of `bowl`, `cliff`. |" in text


def test_missing_markers_are_an_error_not_a_silent_skip(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "compare.md"
    page.write_text(page.read_text().replace(docs.END.format(name="command-compare"), ""))
    with pytest.raises(ValueError, match="command-compare"):
        docs.update(tmp_path, check=True)


def test_links_between_pages_resolve():
    broken = []
    for page in pages():
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
            if not path.exists() and rel not in ELSEWHERE:
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_the_docs_name_no_file_outside_the_project():
    for page in pages():
        text = page.read_text()
        assert "CLAIMS.md" not in text and "seed-notes" not in text, page


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
