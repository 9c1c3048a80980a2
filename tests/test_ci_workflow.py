"""The CI benchmark job: its decision is dlbench's own (no Python in the YAML), and its compare
command line is one this dlbench accepts."""

import re
import shlex
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from dlbench import cli
from dlbench.results import Recorder, write_results
from dlbench.timing import Timing

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = (ROOT / ".github" / "workflows" / "benchmark.yml").read_text()
runner = CliRunner()


def test_the_workflow_carries_no_python():
    assert not re.search(r"python3? -( |$)|<<\s*'?PY|python -c", WORKFLOW)
    assert "import " not in WORKFLOW


def workflow_compare_args() -> list[str]:
    env = dict(re.findall(r"^  (SUITE_ARGS|COMPARE_ARGS): (.+)$", WORKFLOW, flags=re.M))
    runs = re.search(r'runs="([^"]+)"', WORKFLOW).group(1)
    assert "$runs $COMPARE_ARGS" in WORKFLOW and "venv-head/bin/dlbench compare" in WORKFLOW
    return [*shlex.split(runs), *shlex.split(env["COMPARE_ARGS"])]


def run_file(path, median, rng):
    rec = Recorder("demo")
    rec.timing("relu", Timing(median * np.exp(rng.normal(0, 0.02, 7)), loops=10, items=1000, bytes=8e3),
               case={"n": 1000})
    return write_results([rec], {"seeds": [0]}, path, force=True).path


def test_the_workflows_compare_confirms_a_slowdown_in_every_pairing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    args = workflow_compare_args()
    for name in ("base-1", "base-2"):
        run_file(tmp_path / f"{name}.parquet", 1e-3, rng)
    for name in ("head-1", "head-2"):
        run_file(tmp_path / f"{name}.parquet", 1e-3, rng)
    r = runner.invoke(cli.app, ["compare", *args, "--format", "markdown"])
    assert r.exit_code == 0, r.output
    assert "in all 4 base/new pairings" in r.stdout
    run_file(tmp_path / "head-2.parquet", 1.5e-3, rng)  # one head run slow: not confirmed
    assert runner.invoke(cli.app, ["compare", *args]).exit_code == 0
    run_file(tmp_path / "head-1.parquet", 1.5e-3, rng)  # both: confirmed, the job fails
    r = runner.invoke(cli.app, ["compare", *args, "--format", "markdown"])
    assert r.exit_code == 1 and r.stdout.startswith("### ❌")
