"""`dlbench suite --quick`: one file with every registered experiment, every claim, reproducible."""

import numpy as np
import pytest
from typer.testing import CliRunner

from dlbench import cli, experiments
from dlbench.experiments.base import catalogue
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
    # every claim measured: any verdict of the protocol but "not run" (conditional: the grid points disagree)
    assert set(res.claims["verdict"]) <= {"supported", "refuted", "inconclusive", "conditional"}
    assert res.claims["evidence"].str.len().min() > 0


def test_every_control_is_measured_and_none_comes_out_supported(two_runs):
    """The proof that each claim's test can fail: its control, through the same code, is not supported."""
    res = two_runs[0]
    grid = res.rows[res.rows["kind"] == "grid"]
    controls = grid[grid["role"] == "control"]
    for name in experiments.names():
        for cid, spec in catalogue(experiments.load(name)).items():
            if not spec.control or spec.basis == "timing":
                continue  # not yet on the protocol; or its control rests on wall time, which tests never judge
            mine = controls[(controls["experiment"] == name) & (controls["claim"] == cid)]
            assert len(mine), f"{cid}: its control ({spec.control}) was not measured"
            supported = mine[mine["verdict"] == "supported"]
            assert supported.empty, f"{cid}: its control came out supported: {supported['evidence'].tolist()}"


def test_every_check_passes(two_runs):
    checks = two_runs[0].rows[two_runs[0].rows["kind"] == "check"]
    failed = checks[checks["verdict"] != "pass"]
    assert failed.empty, failed[["metric", "evidence"]].values.tolist()


def test_same_seed_gives_bit_identical_measurements(two_runs):
    a, b = (r.rows for r in two_runs)
    keep_a = (a["kind"] != "timing") & (a["better"] != "none") & (~a["kind"].isin(["claim", "grid", "check"]))
    keep_b = (b["kind"] != "timing") & (b["better"] != "none") & (~b["kind"].isin(["claim", "grid", "check"]))
    cols = ["experiment", "section", "case", "metric", "seed", "sample"]
    sa, sb = a.loc[keep_a].reset_index(drop=True), b.loc[keep_b].reset_index(drop=True)
    assert sa[cols].equals(sb[cols])
    np.testing.assert_array_equal(sa["value"].to_numpy(), sb["value"].to_numpy())
    for kind in ("grid", "check"):  # findings and checks that rest on measured numbers are identical too
        fa = a[(a["kind"] == kind) & (a["basis"] != "timing")].reset_index(drop=True)
        fb = b[(b["kind"] == kind) & (b["basis"] != "timing")].reset_index(drop=True)
        assert fa[["claim", "role", "case", "verdict", "evidence"]].equals(fb[["claim", "role", "case", "verdict",
                                                                                "evidence"]])


def test_two_runs_of_one_commit_do_not_regress_in_quality(two_runs):
    c = compare_files(two_runs[0].path, two_runs[1].path, fail_on=("quality",))
    assert c.exit_status == 0
    assert c.only_in_base.empty if hasattr(c.only_in_base, "empty") else not c.only_in_base
