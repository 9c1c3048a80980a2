"""`dlbench suite --quick`: one file with every registered experiment, every claim, reproducible."""

import numpy as np
import pytest
from typer.testing import CliRunner

from dlbench import cli, experiments
from dlbench.compare import compare_files
from dlbench.results import read_results

runner = CliRunner()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("suite")
    paths = [tmp / "a.parquet", tmp / "b.parquet"]
    for path in paths:
        r = runner.invoke(cli.app, ["suite", "--quick", "--out", str(path), "-q"],
                          env={"COLUMNS": "200", "NO_COLOR": "1"})
        assert r.exit_code == 0, r.output
    return [read_results(p) for p in paths]


def test_suite_holds_every_experiment_and_every_claim(two_runs):
    res = two_runs[0]
    assert res.experiments == experiments.names()
    for name in experiments.names():
        module = experiments.load(name)
        got = set(res.claims.loc[res.claims["experiment"] == name, "claim"])
        assert set(module.CLAIMS) <= got, f"{name} is missing verdicts for {set(module.CLAIMS) - got}"
    assert set(res.claims["verdict"]) <= {"supported", "refuted", "inconclusive", "conditional"}
    assert res.claims["evidence"].str.len().min() > 0


def test_same_seed_gives_bit_identical_measurements(two_runs):
    a, b = (r.rows for r in two_runs)
    keep_a = (a["kind"] != "timing") & (a["better"] != "none") & (a["kind"] != "claim")
    keep_b = (b["kind"] != "timing") & (b["better"] != "none") & (b["kind"] != "claim")
    cols = ["experiment", "section", "case", "metric", "seed", "sample"]
    assert a.loc[keep_a, cols].equals(b.loc[keep_b, cols])
    np.testing.assert_array_equal(a.loc[keep_a, "value"].to_numpy(), b.loc[keep_b, "value"].to_numpy())


def test_two_runs_of_one_commit_do_not_regress_in_quality(two_runs):
    c = compare_files(two_runs[0].path, two_runs[1].path, fail_on=("quality",))
    assert c.exit_status == 0
    assert c.only_in_base.empty if hasattr(c.only_in_base, "empty") else not c.only_in_base
