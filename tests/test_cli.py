"""The command line: help, env, show, generated experiment commands, one-line errors."""

import json

import pytest
import typer
from typer.testing import CliRunner

import toy_experiment
from dlbench import cli
from dlbench.results import read_results

runner = CliRunner()


@pytest.fixture(scope="module")
def toy_app():
    app = typer.Typer(cls=cli.OneLineGroup)
    app.command("toy", help=toy_experiment.HELP)(cli._experiment_command(toy_experiment))
    app.command("show")(cli.show)
    return app


def invoke(app, *args):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_help_lists_commands_and_every_command_has_help():
    r = invoke(cli.app, "--help")
    assert r.exit_code == 0
    group = typer.main.get_command(cli.app)
    for name, command in group.commands.items():
        assert command.help, f"{name} has no help text"
        assert name in r.output


def test_version():
    r = invoke(cli.app, "--version")
    assert r.exit_code == 0 and r.output.startswith("dlbench ")


def test_env_json_has_fingerprint_and_bandwidth():
    r = invoke(cli.app, "env", "--quick", "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert {"numpy", "blas", "cpu_model", "threads"} <= set(doc["fingerprint"])
    assert doc["bandwidth"]["float32_cache"] > 0


def test_experiment_writes_a_file_that_show_renders(toy_app, tmp_path):
    out = tmp_path / "toy.parquet"
    r = invoke(toy_app, "toy", "--quick", "--out", str(out), "--seeds", "3", "--format", "json")
    assert r.exit_code == 0, r.output
    res = read_results(out)
    assert res.meta["options"]["toy"]["steps"] == 10
    assert set(res.claims["verdict"]) <= {"supported", "refuted", "inconclusive"}
    for fmt in ("table", "markdown", "json", "csv"):
        r = invoke(toy_app, "show", str(out), "--format", fmt)
        assert r.exit_code == 0, r.output
        assert "T1" in r.output
    md = invoke(toy_app, "show", str(out), "--format", "markdown").output
    assert "| claim | verdict | control | sensitivity | statement | evidence |" in md


def test_option_values_reach_the_experiment(toy_app, tmp_path):
    out = tmp_path / "toy.parquet"
    r = invoke(toy_app, "toy", "--quick", "--steps", "17", "--shape", "cliff", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    res = read_results(out)
    assert res.meta["options"]["toy"] == {"shape": "cliff", "steps": 17, "scale": 1.0}


@pytest.mark.parametrize("args, fragment", [
    (["toy", "--shape", "nope"], "'nope' is not one of 'bowl', 'cliff'"),
    (["toy", "--steps", "0"], "--steps"),
    (["toy", "--seeds", "0"], "--seeds"),
    (["toy", "--format", "xml"], "--format"),
    (["show", "/no/such/file.parquet"], "no such file"),
    (["show"], "Missing argument"),
    (["toy", "--quick", "--plot", "x.png"], "No such option"),
    (["toy", "--seed", "-1"], "--seed"),
    (["toy", "--threads", "4096"], "--threads must be between 1"),
    (["toy", "--out", "x.csv"], "must end in .parquet"),
    (["toy", "--out", ".parquet"], "must end in .parquet"),
    (["toy", "--out", "/"], "must end in .parquet"),
    (["toy", "--out", "/proc/x.parquet"], "not writable"),
    (["toy", "--out", "a.parquet", "--no-save"], "contradict"),
])
def test_bad_input_is_one_line_and_exit_2(toy_app, args, fragment):
    r = invoke(toy_app, *args)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlbench: error:"), r.output
    assert fragment in lines[0]
    assert "Traceback" not in r.output


def test_existing_out_needs_force(toy_app, tmp_path):
    out = tmp_path / "toy.parquet"
    assert invoke(toy_app, "toy", "--quick", "--out", str(out), "-q").exit_code == 0
    r = invoke(toy_app, "toy", "--quick", "--out", str(out), "-q")
    assert r.exit_code == 2 and "--force" in r.output
    assert invoke(toy_app, "toy", "--quick", "--out", str(out), "-q", "--force").exit_code == 0


def test_show_rejects_foreign_file(tmp_path):
    bad = tmp_path / "x.parquet"
    bad.write_text("hello")
    r = invoke(cli.app, "show", str(bad))
    assert r.exit_code == 2 and "not a Parquet file" in r.output


def test_python_dash_m_runs_the_same_app():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "dlbench", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("dlbench ")


def test_out_is_checked_before_the_run(toy_app, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    r = invoke(toy_app, "toy", "--quick", "--out", str(blocker / "x.parquet"))
    assert r.exit_code == 2 and "is not a directory" in r.output
    folder = tmp_path / "dir.parquet"
    folder.mkdir()
    r = invoke(toy_app, "toy", "--quick", "--out", str(folder), "--force")
    assert r.exit_code == 2 and "is a directory" in r.output


def test_sparkline_of_a_curve_that_reaches_denormals_warns_nothing():
    import warnings

    import numpy as np

    from dlbench.render import sparkline

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        line = sparkline(np.array([1e300, 1.0, 5e-324]))
    assert len(line) == 3 and line[0] == "█" and line[-1] == "▁"
