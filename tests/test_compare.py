"""Compare logic on synthetic results files, and the `dlbench compare` command."""

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dlbench import cli
from dlbench.compare import compare, compare_files, judge, parse_fail_on, parse_threshold, smallest_p
from dlbench.errors import DlbenchError
from dlbench.results import Recorder, read_results, write_results
from dlbench.protocol import Judgement
from dlbench.stats import Finding
from dlbench.timing import Timing

runner = CliRunner()
FINGERPRINT = {"numpy": "2.4.6", "blas": "openblas", "blas_version": "0.3.30", "blas_arch": "Haswell",
               "threads": 2, "cpu_model": "AMD EPYC 7B13", "cpu_count": 2, "machine": "x86_64",
               "started": "2026-01-01T00:00:00+00:00", "command": "dlbench suite --quick"}
BANDWIDTH = {"float32_cache": 120.0, "float32_dram": 45.0, "float64_cache": 120.0, "float64_dram": 45.0}


def lognormal(rng, median, sigma, n):
    return median * np.exp(rng.normal(0.0, sigma, n))


def write(path, timings=None, metrics=None, claims=None, *, fingerprint=None, bandwidth=None, curves=None,
          checks=None, control="refuted"):
    """A results file of experiment `demo`: timings {case n: samples}, metrics {(name, better): values},
    claims and checks {id: error} (an error within 1e-6 supports or passes)."""
    rec = Recorder("demo")
    for n, samples in (timings or {}).items():
        rec.timing("relu", Timing(np.asarray(samples, float), loops=10, items=n, bytes=8.0 * n), case={"n": n})
    for (name, better), values in (metrics or {}).items():
        rec.metric(name, values, case={"opt": "adam"}, better=better, seeds=range(len(values)))
    for seed, values in enumerate(curves or []):
        rec.curve("loss", values, case={"opt": "sgd"}, seed=seed)
    for cid, error in (claims or {}).items():
        v = "supported" if error <= 1e-6 else "refuted"
        f = Finding(v, error, 0.0, 1e-6, 1, "exact", f"error {error:g}")
        rec.verdict(Judgement(cid, v, f, control, "supported at the one grid point", f.evidence), f"claim {cid}")
    for cid, error in (checks or {}).items():
        rec.check(cid, error, 1e-6, what="max |diff|")
    meta = {"fingerprint": dict(fingerprint or FINGERPRINT), "bandwidth": dict(bandwidth or BANDWIDTH),
            "seeds": [0, 1, 2, 3, 4]}
    return write_results([rec], meta, path, force=True).path


def invoke(*args):
    return runner.invoke(cli.app, ["compare", *map(str, args)], env={"COLUMNS": "200", "NO_COLOR": "1"})


def result_of(comparison, metric="relu", case=None):
    rows = comparison.rows[comparison.rows["metric"] == metric]
    if case is not None:
        rows = rows[rows["case"] == case]
    assert len(rows) == 1
    return rows.iloc[0]


# ------------------------------------------------------------------------------------------- decision rule

def test_identical_samples_are_same_and_exit_0(tmp_path):
    rng = np.random.default_rng(0)
    t = {1000: lognormal(rng, 1e-3, 0.05, 7)}
    m = {("loss", "lower"): [0.5, 0.4, 0.45, 0.55, 0.5]}
    a = write(tmp_path / "a.parquet", t, m, {"D4": 0.0})
    b = write(tmp_path / "b.parquet", t, m, {"D4": 0.0})
    c = compare_files(a, b)
    assert set(c.rows["result"]) == {"same"}
    assert c.exit_status == 0 and c.regressions.empty
    r = invoke(a, b)
    assert r.exit_code == 0, r.output
    assert "no regression" in r.output


def test_x15_slower_with_low_noise_is_slower_and_exit_1(tmp_path):
    rng = np.random.default_rng(1)
    a = write(tmp_path / "a.parquet", {1000: lognormal(rng, 1e-3, 0.03, 7)})
    b = write(tmp_path / "b.parquet", {1000: lognormal(rng, 1.5e-3, 0.03, 7)})
    row = result_of(compare_files(a, b))
    assert row["result"] == "slower" and row["regression"]
    assert row["estimate"] == pytest.approx(1.5, rel=0.05) and row["low"] > 1 and row["p"] < 0.01
    r = invoke(a, b, "--format", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["exit_status"] == 1
    assert [x["result"] for x in doc["regressions"]] == ["slower"]


def test_faster_is_reported_and_never_fails(tmp_path):
    rng = np.random.default_rng(2)
    a = write(tmp_path / "a.parquet", {1000: lognormal(rng, 1e-3, 0.03, 7)})
    b = write(tmp_path / "b.parquet", {1000: lognormal(rng, 0.6e-3, 0.03, 7)})
    assert result_of(compare_files(a, b))["result"] == "faster"
    assert invoke(a, b).exit_code == 0


def test_significant_shift_below_threshold_is_same():
    rng = np.random.default_rng(3)
    base, new = lognormal(rng, 1e-3, 0.005, 15), lognormal(rng, 1.05e-3, 0.005, 15)
    j = judge(base, new, threshold=0.10, alpha=0.01)
    assert j.p < 0.01 and j.low > 1  # real and significant, but only 5 %
    assert j.direction == 0
    assert judge(base, new, threshold=0.02, alpha=0.01).direction == 1


def test_heavy_noise_real_x12_shift_with_few_samples_is_not_called():
    rng = np.random.default_rng(4)
    called = 0
    for _ in range(20):
        j = judge(lognormal(rng, 1e-3, 0.5, 5), lognormal(rng, 1.2e-3, 0.5, 5))
        called += j.direction != 0
    assert called == 0


def test_a_a_twenty_pairs_from_one_distribution_never_regress(tmp_path):
    rng = np.random.default_rng(5)

    def draw(path):
        timings = {n: lognormal(rng, 1e-6 * n ** 0.5, 0.08, 7) for n in (100, 10_000, 1_000_000)}
        metrics = {("loss", "lower"): rng.normal(0.3, 0.05, 5), ("acc", "higher"): rng.normal(0.9, 0.02, 5)}
        return write(path, timings, metrics, {"D4": 0.0})

    for i in range(20):
        c = compare_files(draw(tmp_path / f"a{i}.parquet"), draw(tmp_path / f"b{i}.parquet"))
        assert c.exit_status == 0, c.rows[c.rows["regression"]]
        assert not c.rows["result"].isin(["slower", "worse"]).any()


def test_quality_metrics_use_their_better_direction(tmp_path):
    a = write(tmp_path / "a.parquet", metrics={("loss", "lower"): [0.50, 0.52, 0.48, 0.51, 0.49],
                                               ("acc", "higher"): [0.90, 0.91, 0.89, 0.90, 0.92],
                                               ("width", "none"): [10, 11, 12, 10, 11]})
    b = write(tmp_path / "b.parquet", metrics={("loss", "lower"): [0.30, 0.31, 0.29, 0.30, 0.32],
                                               ("acc", "higher"): [0.70, 0.71, 0.69, 0.72, 0.70],
                                               ("width", "none"): [20, 21, 22, 20, 21]})
    c = compare_files(a, b)
    assert result_of(c, "loss")["result"] == "improved"
    assert result_of(c, "acc")["result"] == "worse" and result_of(c, "acc")["regression"]
    width = result_of(c, "width")
    assert width["result"] == "higher" and width["category"] == "info" and not width["regression"]
    assert c.exit_status == 1
    assert invoke(a, b, "--fail-on", "timing,verdict").exit_code == 0


def test_values_that_are_not_all_positive_use_the_difference():
    j = judge([0.0, 0.1, -0.1, 0.05, -0.05], [1.0, 1.1, 0.9, 1.05, 0.95])
    assert j.effect == "difference" and j.estimate == pytest.approx(1.0) and j.direction == 1
    # base median 0: any significant difference is beyond the relative threshold
    assert judge([0.0] * 5, [0.0] * 5).direction == 0


def test_curves_are_judged_on_each_seeds_final_value(tmp_path):
    steps = np.linspace(1, 0, 30)
    a = write(tmp_path / "a.parquet", curves=[1 + steps + s * 0.01 for s in range(5)])
    b = write(tmp_path / "b.parquet", curves=[2 + steps + s * 0.01 for s in range(5)])
    row = result_of(compare_files(a, b), "loss")
    assert row["kind"] == "curve" and row["n_base"] == 5
    assert row["base"] == pytest.approx(1.02) and row["new"] == pytest.approx(2.02)
    assert row["result"] == "worse"


def test_too_few_values_are_not_testable_and_never_fail(tmp_path):
    assert smallest_p(3, 3) == pytest.approx(0.1)
    assert smallest_p(5, 5) == pytest.approx(2 / 252)
    a = write(tmp_path / "a.parquet", metrics={("loss", "lower"): [0.1, 0.1, 0.1]})
    b = write(tmp_path / "b.parquet", metrics={("loss", "lower"): [0.9, 0.9, 0.9]})
    c = compare_files(a, b)
    assert result_of(c, "loss")["result"] == "n/a" and c.exit_status == 0
    r = invoke(a, b, "--format", "markdown")
    assert r.exit_code == 0 and "at least 5 values per side" in r.stdout


# ---------------------------------------------------------------------------------------- lining rows up

def test_rows_only_in_one_file_are_listed(tmp_path):
    rng = np.random.default_rng(6)
    a = write(tmp_path / "a.parquet", {1000: lognormal(rng, 1e-3, 0.03, 7), 50: lognormal(rng, 1e-5, 0.03, 7)},
              claims={"D4": 0.0, "D5": 0.0})
    b = write(tmp_path / "b.parquet", {1000: lognormal(rng, 1e-3, 0.03, 7), 7: lognormal(rng, 1e-6, 0.03, 7)},
              claims={"D4": 0.0})
    c = compare_files(a, b)
    assert c.only_in_base[["kind", "case", "metric"]].values.tolist() == [["timing", "n=50", "relu"],
                                                                          ["claim", "", "D5"]]
    assert c.only_in_new[["kind", "case", "metric"]].values.tolist() == [["timing", "n=7", "relu"]]
    assert c.exit_status == 0  # a new or removed benchmark is news, not a regression
    out = invoke(a, b).output
    assert "only in base: demo timing relu [n=50]" in out
    assert "only in base: demo claim D5" in out
    assert "only in new: demo timing relu [n=7]" in out


def test_verdict_flip_is_flagged(tmp_path):
    a = write(tmp_path / "a.parquet", claims={"D4": 0.0, "D5": 0.0})
    b = write(tmp_path / "b.parquet", claims={"D4": 1.0, "D5": 0.0})
    c = compare_files(a, b)
    flip = c.claims[c.claims["changed"]]
    assert flip[["claim", "base_verdict", "new_verdict"]].values.tolist() == [["D4", "supported", "refuted"]]
    assert c.exit_status == 1
    assert c.regressions[["kind", "metric", "result"]].values.tolist() == [["claim", "D4", "supported -> refuted"]]
    r = invoke(a, b)
    assert r.exit_code == 1 and "D4" in r.output and "refuted (changed" in r.output
    assert invoke(a, b, "--fail-on", "timing,quality").exit_code == 0
    assert invoke(a, b, "--fail-on", "none").exit_code == 0


# ---------------------------------------------------------------------------------------- normalization

def test_normalize_compares_fractions_of_each_machines_bandwidth(tmp_path):
    rng = np.random.default_rng(7)
    fast_machine = {k: 2 * v for k, v in BANDWIDTH.items()}
    a = write(tmp_path / "a.parquet", {1000: lognormal(rng, 1e-3, 0.02, 7)})
    b = write(tmp_path / "b.parquet", {1000: lognormal(rng, 0.5e-3, 0.02, 7)}, bandwidth=fast_machine)
    assert result_of(compare_files(a, b))["result"] == "faster"
    row = result_of(compare_files(a, b, normalize=True))
    assert row["result"] == "same" and row["estimate"] == pytest.approx(1.0, rel=0.05)
    assert row["unit"] == "B" and row["base"] == pytest.approx(1e-3 * 120e9, rel=0.05)


def test_normalize_picks_dram_bandwidth_for_large_working_sets(tmp_path):
    rng = np.random.default_rng(8)
    t = {10**7: lognormal(rng, 1e-2, 0.02, 7)}
    a = write(tmp_path / "a.parquet", t)
    row = result_of(compare_files(a, a, normalize=True))
    assert row["base"] == pytest.approx(np.median(t[10**7]) * 45e9)  # 80 MB per call: DRAM


def test_normalize_without_a_probe_is_an_error(tmp_path):
    rng = np.random.default_rng(9)
    a = write(tmp_path / "a.parquet", {1000: lognormal(rng, 1e-3, 0.02, 7)})
    res = read_results(a)
    res.meta["bandwidth"] = {}
    with pytest.raises(DlbenchError, match="copy-bandwidth"):
        compare(res, read_results(a), normalize=True)


# ---------------------------------------------------------------------------------------- fingerprints

def test_fingerprint_warning_when_what_matters_differs(tmp_path):
    rng = np.random.default_rng(10)
    t = {1000: lognormal(rng, 1e-3, 0.02, 7)}
    a = write(tmp_path / "a.parquet", t)
    other = dict(FINGERPRINT, cpu_model="Intel Xeon Platinum 8370C", threads=4)
    b = write(tmp_path / "b.parquet", t, fingerprint=other)
    r = invoke(a, b)
    assert r.exit_code == 0
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "cpu_model" in warnings[0] and "threads" in warnings[0]
    assert "--normalize" in warnings[0]
    assert "⚠️" in invoke(a, b, "--format", "markdown").stdout


def test_no_warning_for_noise_such_as_start_time_or_command(tmp_path):
    rng = np.random.default_rng(11)
    t = {1000: lognormal(rng, 1e-3, 0.02, 7)}
    a = write(tmp_path / "a.parquet", t)
    b = write(tmp_path / "b.parquet", t, fingerprint=dict(FINGERPRINT, started="2027-05-05T10:00:00+00:00",
                                                          command="dlbench suite", cpu_mhz=3400.1))
    r = invoke(a, b)
    assert r.exit_code == 0 and r.stderr == ""


# ---------------------------------------------------------------------------------------- output formats

def markdown_tables(text):
    """Every pipe table in `text` as a list of rows of cells; asserts each is well formed."""
    tables, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            split = [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in block]
            assert re.fullmatch(r"\|(---\|)+", block[1]), block[1]
            width = len(split[0])
            assert all(len(row) == width for row in split), block
            tables.append([split[0], *split[2:]])
            block = []
    return tables


def test_markdown_parses_as_tables(tmp_path):
    rng = np.random.default_rng(12)
    a = write(tmp_path / "a.parquet", {1000: lognormal(rng, 1e-3, 0.03, 7), 10: lognormal(rng, 1e-6, 0.03, 7)},
              {("loss", "lower"): [0.5, 0.4, 0.45, 0.55, 0.5]}, {"D4": 0.0, "D5": 0.0})
    b = write(tmp_path / "b.parquet", {1000: lognormal(rng, 1.5e-3, 0.03, 7), 10: lognormal(rng, 1e-6, 0.03, 7)},
              {("loss", "lower"): [0.5, 0.4, 0.45, 0.55, 0.5]}, {"D4": 1.0, "D5": 0.0})
    r = invoke(a, b, "--format", "markdown")
    assert r.exit_code == 1
    tables = markdown_tables(r.stdout)
    changed, claims = tables[0], tables[1]
    assert changed[0] == ["experiment", "case", "metric", "better", "base", "new", "new/base [95% CI]", "p", "result"]
    assert changed[1][:3] == ["demo", "n=1000", "relu"] and changed[1][-1] == "slower ✗"
    assert claims[1][:4] == ["demo", "D4", "supported", "refuted (changed ✗)"]
    assert r.stdout.startswith("### ❌ dlbench compare: 2 regressions")
    only = invoke(a, b, "--format", "markdown", "--only-changed").stdout
    assert "<details>" not in only and len(markdown_tables(only)) == 2


def test_json_and_only_changed(tmp_path):
    rng = np.random.default_rng(13)
    a = write(tmp_path / "a.parquet", {1000: lognormal(rng, 1e-3, 0.03, 7), 10: lognormal(rng, 1e-6, 0.03, 7)})
    b = write(tmp_path / "b.parquet", {1000: lognormal(rng, 1.5e-3, 0.03, 7), 10: lognormal(rng, 1e-6, 0.03, 7)})
    doc = json.loads(invoke(a, b, "--format", "json").stdout)
    assert {r["case"]: r["result"] for r in doc["rows"]} == {"n=1000": "slower", "n=10": "same"}
    assert doc["settings"] == {"threshold": 0.1, "alpha": 0.01, "normalize": False,
                               "fail_on": ["timing", "quality", "verdict"]}
    doc = json.loads(invoke(a, b, "--format", "json", "--only-changed").stdout)
    assert [r["case"] for r in doc["rows"]] == ["n=1000"]
    table = invoke(a, b, "--only-changed").output
    assert "n=1000" in table and "n=10 " not in table


def test_threshold_and_fail_on_parsing():
    assert parse_threshold("10%") == pytest.approx(0.1)
    assert parse_threshold("0.05") == pytest.approx(0.05)
    assert parse_threshold("150%") == pytest.approx(1.5)
    assert parse_fail_on("verdict,timing") == ("timing", "verdict")
    assert parse_fail_on("all") == ("timing", "quality", "verdict")
    assert parse_fail_on("none") == ()


# ---------------------------------------------------------------------------------------- bad input

def _foreign(p):
    pq.write_table(pa.table({"a": [1, 2]}), p)


@pytest.mark.parametrize("make_new, extra, fragment", [
    (None, [], "no such file"),
    (lambda p: p.write_text("a,b\n1,2\n"), [], "not a Parquet file"),
    (_foreign, [], "not a dlbench results file"),
    (lambda p: p.write_bytes(b"PAR1" + b"\0" * 64), [], "damaged"),
    ("other", [], "no rows in common"),
    ("same", ["--threshold", "5"], "write a percentage"),
    ("same", ["--threshold", "lots"], "--threshold"),
    ("same", ["--alpha", "1.5"], "--alpha"),
    ("same", ["--fail-on", "speed"], "unknown category 'speed'"),
    ("same", ["--fail-on", ""], "empty category"),
    ("same", ["--fail-on", "timing,,verdict"], "empty category"),
    ("same", ["--format", "xml"], "--format"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, make_new, extra, fragment):
    rng = np.random.default_rng(14)
    a = write(tmp_path / "a.parquet", {1000: lognormal(rng, 1e-3, 0.03, 7)})
    b = tmp_path / "b.parquet"
    if make_new == "same":
        b = a
    elif make_new == "other":
        rec = Recorder("elsewhere")
        rec.metric("loss", [1.0, 2.0], case={"k": 1})
        write_results([rec], {}, b)
    elif make_new is not None:
        make_new(b)
    r = invoke(a, b, *extra)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlbench: error:"), r.output
    assert fragment in lines[0]


# ---------------------------------------------------------------------------------------- end to end

def test_suite_files_compare_end_to_end(tmp_path, monkeypatch):
    from dlbench import experiments

    monkeypatch.setattr(experiments, "MODULES", {"toy": "toy_experiment"})
    outs = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    for out in outs:
        r = runner.invoke(cli.app, ["suite", "--quick", "--out", str(out), "-q"])
        assert r.exit_code == 0, r.output
    assert read_results(outs[0]).experiments == experiments.names()
    # same seeds: every metric and verdict is identical; timings are left out of the exit status
    # because two runs on a busy test machine may really differ
    r = invoke(*outs, "--format", "json", "--fail-on", "quality,verdict")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["only_in_base"] == [] and doc["only_in_new"] == []
    assert {row["result"] for row in doc["rows"] if row["kind"] != "timing"} <= {"same", "n/a"}
    assert {c["claim"] for c in doc["claims"]} == {"T1", "T2"}


def test_timings_from_another_host_are_shown_but_never_a_regression(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    a = write(tmp_path / "a.parquet", {1000: lognormal(rng, 1e-3, 0.03, 7)})
    slow = {1000: lognormal(rng, 1.5e-3, 0.03, 7)}
    b = write(tmp_path / "b.parquet", slow)
    assert result_of(compare_files(a, b))["regression"]  # one host: a regression
    monkeypatch.setattr("dlbench.results.host_id", lambda: "0123456789ab")
    b = write(tmp_path / "b.parquet", slow)
    c = compare_files(a, b)
    row = result_of(c)
    assert row["result"] == "slower" and not row["regression"] and c.exit_status == 0
    assert any("timed on host" in w and "0123456789ab in new" in w and "never judged a regression" in w
               for w in c.warnings)


# ---------------------------------------------------------------------------------------- as a person reads it

def many_timings(rng, n_cases, factor=1.0):
    return {n: lognormal(rng, 1e-6 * n * factor, 0.03, 7) for n in range(100, 100 + n_cases)}


def test_default_table_shows_what_changed_and_counts_the_rest(tmp_path):
    rng = np.random.default_rng(20)
    base = many_timings(rng, 40)
    new = {n: lognormal(rng, 1e-6 * n * (1.5 if n == 100 else 0.5 if n == 101 else 1.0), 0.03, 7) for n in base}
    a = write(tmp_path / "a.parquet", base, claims={"D4": 0.0, "D5": 0.0})
    b = write(tmp_path / "b.parquet", new, claims={"D4": 1.0, "D5": 0.0})
    r = invoke(a, b)
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert lines[0].startswith("2 regressions: 1 slower, 1 verdict changed, 1 faster, 38 same")
    cases = [re.search(r"n=\d+", line).group() for line in lines if line.strip().startswith(("slower", "faster"))]
    assert cases == ["n=100", "n=101"]  # the regression first, then the improvement
    assert "n=102 " not in r.stdout  # what stayed the same is counted, not listed
    assert "D4" in r.stdout and "D5" not in r.stdout
    assert lines[-1].startswith("unchanged: 38 rows the same, 1 of 2 verdicts unchanged")
    full = invoke(a, b, "--all").stdout
    assert all(f"n={n} " in full for n in base) and "D5" in full
    # Markdown and JSON keep everything
    md = invoke(a, b, "--format", "markdown").stdout
    assert all(f"n={n} " in md or f"n={n} |" in md for n in base) and "D5" in md
    doc = json.loads(invoke(a, b, "--format", "json").stdout)
    assert len(doc["rows"]) == 40 and {c["claim"] for c in doc["claims"]} == {"D4", "D5"}


def test_two_runs_of_one_commit_fit_in_one_screen(tmp_path):
    rng = np.random.default_rng(21)
    metrics = {(f"m{i}", "lower"): rng.normal(1.0, 0.05, 6) for i in range(30)}
    a = write(tmp_path / "a.parquet", many_timings(rng, 200), metrics, {f"C{i}": 0.0 for i in range(40)})
    b = write(tmp_path / "b.parquet", many_timings(rng, 200), metrics, {f"C{i}": 0.0 for i in range(40)})
    r = invoke(a, b)
    assert r.exit_code == 0
    assert len(r.stdout.splitlines()) <= 24, r.stdout


def runs(tmp_path, name, k, rng, factor=1.0):
    return [write(tmp_path / f"{name}{i}.parquet", {1000: lognormal(rng, 1e-3 * factor, 0.02, 7)}) for i in range(k)]


def test_several_runs_a_side_confirm_a_change_only_in_every_pairing(tmp_path):
    rng = np.random.default_rng(22)
    bases = runs(tmp_path, "base", 2, rng)
    # one new run caught a burst of load, the other did not: not confirmed, never failing
    burst = [write(tmp_path / "burst.parquet", {1000: lognormal(rng, 1.5e-3, 0.02, 7)}), *runs(tmp_path, "n", 1, rng)]
    c = compare_files(bases, burst)
    row = result_of(c)
    assert c.pairings == 4 and row["result"] == "same" and not row["regression"]
    assert row["change"] == "slower" and row["changed_in"] == 2
    assert c.exit_status == 0
    args = [x for p in bases for x in ("--base", p)] + [x for p in burst for x in ("--new", p)]
    r = invoke(*args)
    assert r.exit_code == 0 and "not confirmed" in r.stdout and "2 slower" not in r.stdout.splitlines()[0]
    # every new run slower: confirmed in all four pairings, and the effect shown is the smallest
    slow = runs(tmp_path, "slow", 2, rng, factor=1.5)
    c = compare_files(bases, slow)
    row = result_of(c)
    assert row["result"] == "slower" and row["regression"] and row["changed_in"] == 4
    singles = [result_of(compare_files(b, n))["estimate"] for b in bases for n in slow]
    assert row["estimate"] == pytest.approx(min(singles))
    args = [x for p in bases for x in ("--base", p)] + [x for p in slow for x in ("--new", p)]
    r = invoke(*args, "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["pairings"] == 4 and [x["result"] for x in doc["regressions"]] == ["slower"]
    assert [s["path"] for s in doc["bases"]] == [str(p) for p in bases]


def test_one_run_a_side_gives_the_same_answer_either_way(tmp_path):
    rng = np.random.default_rng(23)
    a = write(tmp_path / "a.parquet", {1000: lognormal(rng, 1e-3, 0.03, 7)})
    b = write(tmp_path / "b.parquet", {1000: lognormal(rng, 1.5e-3, 0.03, 7)})
    assert invoke(a, b, "--format", "json").stdout == invoke("--base", a, "--new", b, "--format", "json").stdout


@pytest.mark.parametrize("args, fragment", [
    (["a"], "expected two files"),
    (["a", "b", "c"], "expected two files"),
    (["a", "b", "--new", "c"], "not both"),
    (["--base", "a"], "at least one --base and one --new"),
    ([], "at least one --base and one --new"),
    (["a", "b", "--all", "--only-changed"], "contradict"),
])
def test_sides_given_wrongly_are_one_line(tmp_path, args, fragment):
    rng = np.random.default_rng(24)
    for name in "abc":
        write(tmp_path / f"{name}.parquet", {1000: lognormal(rng, 1e-3, 0.03, 7)})
    args = [str(tmp_path / f"{x}.parquet") if x in "abc" else x for x in args]
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1 and fragment in r.output


def test_control_change_is_a_verdict_change_but_a_missing_control_is_not(tmp_path):
    a = write(tmp_path / "a.parquet", claims={"D4": 0.0}, control="refuted")
    b = write(tmp_path / "b.parquet", claims={"D4": 0.0}, control="supported")
    c = compare_files(a, b)
    assert c.claims["changed"].tolist() == [True] and c.exit_status == 1
    assert "control: supported" in invoke(a, b).stdout
    # a schema-1 file records no control: nothing to compare it with
    v1 = read_results(a)
    v1.rows["control"] = None
    v1.rows["sensitivity"] = None
    assert not compare(v1, read_results(b)).claims["changed"].any()


def test_a_check_that_fails_is_a_regression_one_that_passes_again_is_not(tmp_path):
    ok = write(tmp_path / "ok.parquet", checks={"O8": 0.0, "N8": 0.0})
    broken = write(tmp_path / "broken.parquet", checks={"O8": 1.0, "N8": 0.0})
    c = compare_files(ok, broken)
    assert c.regressions[["kind", "metric", "result"]].values.tolist() == [["check", "O8", "pass -> fail"]]
    assert c.exit_status == 1
    fixed = compare_files(broken, ok)
    assert fixed.exit_status == 0 and fixed.claims["improvement"].tolist() == [True, False]
    assert "fail -> pass" not in invoke(broken, ok).stdout and "(fixed)" in invoke(broken, ok).stdout


def test_compare_decides_and_never_draws():
    import ast
    from pathlib import Path

    import dlbench.compare

    tree = ast.parse(Path(dlbench.compare.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
        {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {"dlbench.render", "dlbench.compare_render", "rich", "typer"} & imported


def test_the_aa_benchmarks_slowed_copy_is_a_valid_file_that_compare_calls_slower(tmp_path):
    """benchmarks/aa_compare.py's 1.5x copy: every timing sample x1.5, nothing else changed, sealed anew."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("aa_compare", root / "benchmarks" / "aa_compare.py")
    aa = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(aa)
    base = root / "results" / "baseline.parquet"
    slow = read_results(aa.slowed_copy(base, tmp_path / "slow.parquet"))
    rows = read_results(base).rows
    timing = rows["kind"] == "timing"
    assert timing.sum() > 0
    np.testing.assert_allclose(slow.rows["value"][timing], 1.5 * rows["value"][timing])
    assert slow.rows["value"][~timing].equals(rows["value"][~timing])
    res = compare_files(base, tmp_path / "slow.parquet")
    assert res.exit_status == 1
    assert (res.rows[res.rows["kind"] == "timing"]["result"] == "slower").any()
