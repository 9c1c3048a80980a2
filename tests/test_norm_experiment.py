"""dlbench norm: the experiment's measurements, its claims, and the command end to end."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from dlbench import cli
from dlbench.errors import DlbenchError
from dlbench.experiments import norm as ne
from dlbench.nn.norm import get_norm
from dlbench.results import read_results
from dlbench.stats import Claim

runner = CliRunner()


def invoke(*args):
    return runner.invoke(cli.app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


# ----------------------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("norm") / "norm.parquet"
    r = invoke("norm", "--quick", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    return out, None


def test_quick_writes_every_claim_and_show_renders_it(quick_run):
    out, png = quick_run
    res = read_results(out)
    claims = res.claims.set_index("claim")
    assert sorted(claims.index) == [f"N{i}" for i in range(1, 10)]
    assert set(claims["verdict"]) <= {"supported", "refuted", "inconclusive"}
    assert all(claims["evidence"].str.len() > 0)
    for fmt in ("table", "markdown"):
        r = invoke("show", str(out), "--format", fmt)
        assert r.exit_code == 0, r.output
        assert "N5" in r.output and "N9" in r.output


def test_plot_draws_accuracy_over_batch_size(quick_run, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "norm.png"
    ne.plot(read_results(quick_run[0]), png)
    assert png.stat().st_size > 0


def test_exact_claims_are_supported(quick_run):
    res = read_results(quick_run[0])
    claims = res.claims.set_index("claim")
    assert claims.loc["N8", "verdict"] == "supported"
    assert claims.loc["N3", "verdict"] != "refuted"
    rows = res.rows[(res.rows["metric"] == "max_rel_diff")]
    by_check = dict(zip(rows["p_check"], rows["value"]))
    assert by_check["BN(aWx) vs BN(Wx), eps 1e-30"] < 1e-10
    per_sample = {k: v for k, v in by_check.items() if not k.startswith(("batch", "BN"))}
    assert len(per_sample) == 9 and max(per_sample.values()) <= 1e-6
    assert min(v for k, v in by_check.items() if k.startswith("batch")) > 1e-3


def test_quick_records_every_table(quick_run):
    rows = read_results(quick_run[0]).rows
    sections = set(rows["section"])
    for prefix in ("N5 test accuracy", "N5 batch-size trend", "N7 ", "N6 ", "N1 ", "N2 learning-rate grid",
                   "N2 largest", "N4 ", "N3 final", "N3 and N8", "N9 ZCA", "norm forward and backward"):
        assert any(s.startswith(prefix) for s in sections), prefix
    timings = rows[rows["kind"] == "timing"]
    assert set(timings[timings["section"].str.startswith("norm forward")]["p_norm"]) == set(ne.NORM_ORDER)
    acc = rows[(rows["metric"] == "test_acc") & rows["section"].str.startswith("N5 test")]["value"]
    assert acc.between(0, 1).all()


@pytest.mark.parametrize("args, fragment", [
    (["--norms", "batch,nope"], "nope"),
    (["--batch-sizes", "1,8"], "--batch-sizes"),
    (["--batch-sizes", "2,x"], "--batch-sizes"),
    (["--batch-sizes", "2,4096"], "--train-size"),
    (["--lr-grid", "0.1,-1"], "--lr-grid"),
    (["--channels", "5"], "--channels"),
    (["--groups", "3"], "--groups"),
    (["--width", "8", "--channels", "8"], "instance norm"),
    (["--features", "1,16"], "--features"),
    (["--data", "sine"], "sine"),
    (["--depth", "0"], "--depth"),
    (["--base-lr", "0"], "--base-lr must be positive"),
])
def test_bad_input_is_one_line_and_exit_2(args, fragment):
    r = invoke("norm", "--quick", "--no-save", *args)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlbench: error:"), r.output
    assert fragment in lines[0]


# ----------------------------------------------------------------------------- options

def test_parse_options_orders_norms_and_picks_the_reference_batch():
    cfg = ne.parse_options(ne.Options(norms="group,none,batch", batch_sizes="64,2,8"))
    assert cfg.norms == ("none", "batch", "group")
    assert cfg.batch_sizes == (2, 8, 64)
    assert cfg.ref_batch == 64            # |log2(64/32)| = 1 < |log2(8/32)| = 2
    assert ne.parse_options(ne.Options(batch_sizes="16,64")).ref_batch == 16   # a tie goes to the smaller
    assert ne.parse_options(ne.Options()).ref_batch == 32


def test_norm_hyper_views_features_as_channels():
    opts = ne.Options(width=32, channels=8, groups=4)
    assert ne.norm_hyper("batch", opts) == {}
    assert ne.norm_hyper("instance", opts) == {"channels": 8}
    assert ne.norm_hyper("group", opts) == {"channels": 8, "num_groups": 4}
    assert ne.scaled_lr(0.1, 2) == pytest.approx(0.1 / 16)


# ----------------------------------------------------------------------------- measurements

def test_drift_in_units_of_the_initial_spread():
    mu0 = np.array([[0.0, 0.0]])
    var0 = np.array([[1.0, 3.0]])                      # s0^2 = 2
    dm, dv = ne.drift(mu0, var0, np.array([[1.0, -3.0]]), np.array([[2.0, 1.0]]))
    assert dm[0] == pytest.approx(2.0 / math.sqrt(2))  # mean |dmu| = 2, over s0
    assert dv[0] == pytest.approx(1.5 / 2)             # mean |dvar| = 1.5, over s0^2


def test_layer_input_stats_leave_the_running_statistics_alone():
    model = ne.make_model("batch", ne.Options(depth=2, width=16, channels=4), 2, 3)
    params = model.init([0, 1])
    X = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
    mu, var = ne.layer_input_stats(model, params, X, 1)
    assert mu.shape == var.shape == (2, 16)
    h = np.maximum(model.forward(params, X, None, train=True)[1].pre[0], 0)
    np.testing.assert_allclose(mu, h.mean(axis=1), rtol=1e-5, atol=1e-6)


def test_batch_stats_accuracy_matches_a_loop_over_test_batches():
    model = ne.make_model("batch", ne.Options(depth=1, width=8, channels=4), 2, 3)
    params = model.init([3, 4])
    rng = np.random.default_rng(1)
    X = rng.standard_normal((22, 2)).astype(np.float32)
    y = rng.integers(0, 3, 22)
    got = ne.batch_stats_accuracy(model, params, X, y, 4)      # 5 batches of 4, 2 samples left out
    hits = np.zeros(2)
    for m in range(5):
        out, _ = model.forward(params, X[4 * m:4 * m + 4], None, train=True)
        hits += (out.argmax(-1) == y[4 * m:4 * m + 4]).sum(axis=1)
    np.testing.assert_allclose(got, hits / 20)
    whole = ne.batch_stats_accuracy(model, params, X, y, 22)
    np.testing.assert_allclose(whole, ne.population_stats_accuracy(model, params, X, y))


def test_batch_stats_accuracy_is_eval_accuracy_for_a_per_sample_norm():
    model = ne.make_model("layer", ne.Options(depth=2, width=8, channels=4), 2, 2)
    params = model.init([0, 1, 2])
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 2)).astype(np.float32)
    y = rng.integers(0, 2, 40)
    out, _ = model.forward(params, X, model.init_state(3), train=False)
    np.testing.assert_allclose(ne.batch_stats_accuracy(model, params, X, y, 2), ne.accuracy(out, y))


def test_largest_stable_and_best_lr():
    lrs = [0.01, 0.1, 1.0]
    stable = np.array([[True, True, False], [True, False, True], [False, False, False]])
    np.testing.assert_array_equal(ne.largest_stable(lrs, stable), [0.1, 1.0, np.nan])
    np.testing.assert_array_equal(ne.largest_stable_index(stable), [1, 2, -1])
    score = np.array([[0.5, 0.9, np.nan], [0.7, 0.6, 0.5], [np.nan, 0.1, 0.2]])
    np.testing.assert_array_equal(ne.best_lr(lrs, score), [0.1, 0.01, 1.0])


def test_spread_of_log_loss_caps_non_finite_losses():
    losses = np.array([[0.1, 1.0, 10.0], [0.5, 0.5, 0.5], [1.0, np.nan, np.inf]])
    np.testing.assert_allclose(ne.spread_log_loss(losses), [2.0, 0.0, math.log10(ne.LOSS_CAP)])


def test_trend_and_epoch_helpers():
    acc = np.array([[0.5, 0.6, 0.7], [0.9, 0.9, 0.9]])
    np.testing.assert_allclose(ne.trend(acc, [2, 4, 8]), [0.1, 0.0], atol=1e-12)
    h = SimpleNamespace(eval_step=np.array([0, 4, 8, 12]), steps_per_epoch=4,
                        test_acc=np.array([[0.5, 0.7, 0.9, 0.95], [0.5, 0.5, 0.6, 0.6]]))
    np.testing.assert_array_equal(ne.epochs_to(h, 0.85), [2.0, np.nan])
    np.testing.assert_array_equal(ne._at_epoch(h, 1), [0.7, 0.5])
    np.testing.assert_array_equal(ne._at_epoch(h, 9), [0.95, 0.6])


def test_scale_invariance_of_batch_norm_is_exact():
    err, n = ne.scale_invariance_error(np.random.default_rng(0))
    assert err < 1e-12 and n == 2 * len(ne.N3_EXACT_SCALES)


@pytest.mark.parametrize("name", ["layer", "instance", "group"])
def test_per_sample_norms_ignore_the_rest_of_the_batch(name):
    opts = ne.Options(width=16, channels=4, groups=2)
    norm = get_norm(name, **ne.norm_hyper(name, opts))
    params, state = norm.init(16, prefix=(2,), dtype=np.float64)
    err, n = ne.batch_dependence(norm, params, state, np.random.default_rng(0), (2, 8, 16), np.float64)
    assert err == 0.0 and n == 2
    model = ne.make_model(name, opts, 3, 2)
    assert ne.net_batch_dependence(model, model.init([0, 1]), np.random.default_rng(1)) == 0.0


def test_batch_norm_depends_on_the_rest_of_the_batch():
    norm = get_norm("batch")
    params, state = norm.init(16, dtype=np.float32)
    err, _ = ne.batch_dependence(norm, params, state, np.random.default_rng(0), (8, 16))
    assert err > 0.1
    assert float(state["num_batches_tracked"]) == 0      # the check works on copies of the state


def test_zca_whitening_gives_identity_covariance_and_is_symmetric():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    x = rng.standard_normal((4000, 6)) @ A + 3.0
    w = ne.zca_whiten(x, eps=0.0)
    np.testing.assert_allclose(w.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(w.T @ w / len(w), np.eye(6), atol=1e-8)
    xc = x - x.mean(axis=0)
    W = np.linalg.lstsq(xc, w, rcond=None)[0]
    np.testing.assert_allclose(W, W.T, atol=1e-8)          # ZCA: the symmetric whitening matrix


def test_loglog_slope_recovers_a_power_law():
    sizes = [16, 32, 64, 128]
    samples = [np.full(5, 1e-6 * f**2) * np.array([1.0, 1.01, 0.99, 1.02, 0.98]) for f in sizes]
    k, lo, hi = ne.loglog_slope(sizes, samples)
    assert k == pytest.approx(2.0, abs=1e-9)
    assert lo <= k <= hi and hi - lo < 0.1
    assert all(math.isnan(v) for v in ne.loglog_slope([16], samples[:1]))


# ----------------------------------------------------------------------------- claims from data

def _grid(stable_none, stable_batch):
    acc = np.full((3, 3), 0.9)
    return {"none": (np.array(stable_none), acc, ~np.array(stable_none)),
            "batch": (np.array(stable_batch), acc, ~np.array(stable_batch))}


def test_claim_n2_follows_the_largest_stable_lr():
    cfg = ne.Config(("none", "batch"), (2, 32), (0.01, 0.1, 1.0), (16, 32), 32)
    low = [[True, False, False]] * 6
    high = [[True, True, True]] * 6
    mixed = [[True, True, False], [True, True, True], [True, True, False]] * 2
    assert ne.claim_n2(_grid(low, high), cfg, 0).verdict == "supported"
    assert ne.claim_n2(_grid(high, low), cfg, 0).verdict == "refuted"
    assert ne.claim_n2(_grid(mixed, mixed), cfg, 0).verdict == "inconclusive"
    assert "lower bound" in ne.claim_n2(_grid(low, high), cfg, 0).evidence
    missing = ne.claim_n2({"batch": _grid(low, high)["batch"]}, cfg, 0)
    assert missing.verdict == "not run" and "--norms" in missing.evidence


def test_claim_n2_effect_and_evidence_agree_when_a_seed_has_no_stable_lr():
    cfg = ne.Config(("none", "batch"), (2, 32), (0.01, 0.1, 1.0), (16, 32), 32)
    none = [[False, False, False], [True, False, False], [False, False, False], [True, True, False]]
    batch = [[True, True, True], [True, True, False], [True, True, True], [True, True, True]]
    c = ne.claim_n2(_grid(none, batch), cfg, 0)
    # steps none (-1, 0, -1, 1) -> lower median -1; batch (2, 1, 2, 2) -> 2; effect 2 - (-1)
    assert c.effect == 3
    assert "none step -1 = none (step -1, below 0.01), 2/4 seeds with no stable lr" in c.evidence
    assert "batch step 2 = 1" in c.evidence
    np.testing.assert_array_equal(ne.grid_median([0, 1, 2, 3]), 1)


def test_only_n9_rests_on_timing(quick_run):
    basis = read_results(quick_run[0]).claims.set_index("claim")["basis"]
    assert set(basis[basis == "timing"].index) == {"N9"}


def _sweep(acc_by_norm_batch, S=5):
    hist = {k: SimpleNamespace(test_acc=np.tile(np.asarray(v, dtype=float)[:, None], (1, 2)))
            for k, v in acc_by_norm_batch.items()}
    return ne.Sweep(hist, {}, {}, {}, {}, {})


def test_claim_n5_needs_batch_norm_to_drop_and_group_and_layer_to_hold():
    cfg = ne.Config(("batch", "layer", "group"), (2, 32), (0.1,), (16,), 32)
    noise = np.array([0.0, 0.01, -0.01, 0.005, -0.005, 0.002])
    good = {("batch", 2): 0.55 + noise, ("batch", 32): 0.95 + noise, ("layer", 2): 0.93 + noise,
            ("layer", 32): 0.94 + noise, ("group", 2): 0.95 + noise, ("group", 32): 0.94 + noise}
    assert ne.claim_n5(_sweep(good), cfg, 0).verdict == "supported"
    bad_layer = {**good, ("layer", 2): 0.6 + noise}
    assert ne.claim_n5(_sweep(bad_layer), cfg, 0).verdict == "refuted"
    flat_batch = {**good, ("batch", 2): 0.95 + noise}
    assert ne.claim_n5(_sweep(flat_batch), cfg, 0).verdict == "inconclusive"
    only = ne.Config(("batch",), (2, 32), (0.1,), (16,), 32)
    assert ne.claim_n5(_sweep(good), only, 0).verdict == "not run"


def test_combine_is_supported_only_when_every_part_is():
    def part(v):
        return Claim("N3", "s", v, 1.0, 0.0, 2.0, 5, "bootstrap", v)

    assert ne.combine("N3", [part("supported"), part("supported")]).verdict == "supported"
    assert ne.combine("N3", [part("supported"), part("inconclusive")]).verdict == "inconclusive"
    assert ne.combine("N3", [part("inconclusive"), part("refuted")]).verdict == "refuted"


def test_options_are_checked_before_any_work():
    with pytest.raises(DlbenchError, match="--groups"):
        ne.parse_options(ne.Options(channels=8, groups=3))


def test_a_comma_list_of_norms_reaches_the_experiment(tmp_path):
    out = tmp_path / "n.parquet"
    r = invoke("norm", "--quick", "--norms", "layer,batch", "--batch-sizes", "4,32", "--lr-grid", "0.03,0.3",
               "--features", "16,32", "--train-size", "64", "--epochs", "2", "--seeds", "2", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    res = read_results(out)
    assert set(res.rows["p_norm"].dropna()) == {"layer", "batch"}
    claims = res.claims.set_index("claim")
    for c in ("N1", "N2", "N3", "N4"):
        assert claims.loc[c, "verdict"] == "not run" and "--norms" in claims.loc[c, "evidence"]


def test_drift_recorder_samples_the_layer_input_during_training():
    model = ne.make_model("none", ne.Options(depth=2, width=8, channels=4), 2, 2)
    params = model.init([0, 1])
    X = np.random.default_rng(0).standard_normal((32, 2)).astype(np.float32)
    rec = ne.DriftRecorder(model, params, X, 1, total_steps=10, points=5)
    for step in range(10):
        params[0] += 0.1                                   # the first layer's weights move every step
        rec(SimpleNamespace(step=step, params=params))
    assert rec.steps == [0, 2, 4, 6, 8, 10]
    mean = np.stack(rec.mean, axis=1)
    assert mean.shape == (2, 6) and (mean[:, 0] == 0).all() and (np.diff(mean, axis=1) > 0).all()


def test_data_from_a_users_file(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    np.savez(tmp_path / "mine.npz", X=X, y=(X[:, 0] * X[:, 1] > 0).astype(int))
    out = tmp_path / "n.parquet"
    r = invoke("norm", "--quick", "--data", str(tmp_path / "mine.npz"), "--batch-sizes", "2,8",
               "--norms", "none,batch,layer", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    res = read_results(out)
    assert res.meta["options"]["norm"]["data"].endswith("mine.npz")
    assert res.claims.set_index("claim").loc["N8", "verdict"] == "supported"


@pytest.mark.parametrize("value, fragment", [("sine", "neither a classification data set"),
                                             ("missing.csv", "no such file")])
def test_bad_data_is_one_line(value, fragment):
    r = invoke("norm", "--quick", "--data", value)
    assert r.exit_code == 2 and fragment in r.output and "Traceback" not in r.output


def test_stable_means_did_not_diverge_not_fast_convergence():
    loss = np.array([[1.0, 0.99, 0.98],       # a small lr: barely trains, but stable
                     [1.0, 0.2, 0.1],         # trains well
                     [1.0, 5.0, 3.0],         # frozen by the trainer after exploding
                     [1.0, np.nan, np.nan]])  # non-finite
    diverged = np.array([False, False, True, False])
    np.testing.assert_array_equal(ne.stable_runs(loss, diverged), [True, True, False, False])
    lrs = [0.01, 0.1, 1.0, 10.0]
    stable = ne.stable_runs(loss, diverged)[None, :]
    np.testing.assert_array_equal(ne.largest_stable(lrs, stable), [0.1])
