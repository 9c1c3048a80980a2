"""What a person reads from the command line: --help without `<bool>`, an unknown command, an interrupted run."""

import pytest
import typer
from typer.testing import CliRunner

from dlbench import cli

runner = CliRunner()
COMMANDS = sorted(typer.main.get_command(cli.app).commands)


@pytest.mark.parametrize("args", [[], *([name] for name in COMMANDS)])
def test_help_shows_no_bool_type_beside_flags(args):
    r = runner.invoke(cli.app, [*args, "--help"], env={"COLUMNS": "160", "NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    assert "--help" in r.output and "<bool>" not in r.output


@pytest.mark.parametrize("name, hint", [("nosuch", ""), ("recurent", "Did you mean 'recurrent'? ")])
def test_an_unknown_command_is_one_line_that_lists_the_valid_ones(name, hint):
    r = runner.invoke(cli.app, [name], env={"COLUMNS": "160", "NO_COLOR": "1"})
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr.strip() == f"dlbench: error: No such command '{name}'. {hint}Valid: " + \
        ", ".join(typer.main.get_command(cli.app).list_commands(None)) + "."
    assert set(COMMANDS) <= set(r.stderr.split("Valid: ")[1].rstrip(".\n").split(", "))


def test_ctrl_c_says_nothing_was_written_and_exits_130(tmp_path, monkeypatch):
    from dlbench import experiments, runner as runner_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "MODULES", {"toy": "toy_experiment"})
    monkeypatch.setattr(runner_module, "run_many", interrupted)
    out = tmp_path / "x.parquet"
    r = runner.invoke(cli.app, ["suite", "--quick", "--out", str(out)])
    assert r.exit_code == 130
    assert r.stderr.strip() == "dlbench: interrupted: nothing written"
    assert r.stdout == "" and not out.exists()


def test_ctrl_c_after_the_file_is_written_names_the_file(tmp_path, monkeypatch):
    from dlbench import experiments

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "MODULES", {"toy": "toy_experiment"})
    monkeypatch.setattr(cli, "emit", interrupted)
    out = tmp_path / "x.parquet"
    r = runner.invoke(cli.app, ["suite", "--quick", "--out", str(out)])
    assert r.exit_code == 130 and out.exists()
    assert r.stderr.strip() == f"dlbench: interrupted: the results were already written to {out}"
