"""Optimizers and gradient clipping: torch.optim's update rules (hand-written float64 references),
the contract every registered optimizer keeps, per-run hyperparameter arrays, and clipping semantics."""

import copy
import math

import numpy as np
import pytest

from dlbench.errors import DlbenchError, UnknownName
from dlbench.nn import optim, parallel
from dlbench.nn.optim import OPTIMIZERS, Optimizer, clip_grad_norm_, clip_grad_value_, get_optimizer

SHAPES = [(3, 4), (5,)]
STEPS = 7
RNG = np.random.default_rng(0)
CURV = [RNG.uniform(0.5, 2.0, s) for s in SHAPES]
NOISE = [[RNG.standard_normal(s) for s in SHAPES] for _ in range(STEPS + 1)]
P0 = [RNG.standard_normal(s) for s in SHAPES]


def grad_fn(params, t):
    """Gradient of a separable quadratic plus a fixed per-step perturbation: depends on the params."""
    return [c * p + n for c, p, n in zip(CURV, params, NOISE[t])]


# --------------------------------------------------------------------------- references: torch's documented algorithms


def ref_sgd(ps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    ps, buf = [p.copy() for p in ps], [None] * len(ps)
    for t in range(1, STEPS + 1):
        gs = grad_fn(ps, t)
        for i in range(len(ps)):
            g = gs[i]
            if weight_decay != 0:
                g = g + weight_decay * ps[i]
            if momentum != 0:
                buf[i] = g.copy() if t == 1 else momentum * buf[i] + (1 - dampening) * g
                g = g + momentum * buf[i] if nesterov else buf[i]
            ps[i] = ps[i] - lr * g
    return ps


def ref_adagrad(ps, lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    ps = [p.copy() for p in ps]
    sums = [np.full_like(p, initial_accumulator_value) for p in ps]
    for t in range(1, STEPS + 1):
        gs = grad_fn(ps, t)
        for i in range(len(ps)):
            g = gs[i]
            if weight_decay != 0:
                g = g + weight_decay * ps[i]
            clr = lr / (1 + (t - 1) * lr_decay)
            sums[i] = sums[i] + g * g
            ps[i] = ps[i] - clr * g / (np.sqrt(sums[i]) + eps)
    return ps


def ref_rmsprop(ps, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    ps = [p.copy() for p in ps]
    sq, ga, buf = ([np.zeros_like(p) for p in ps] for _ in range(3))
    for t in range(1, STEPS + 1):
        gs = grad_fn(ps, t)
        for i in range(len(ps)):
            g = gs[i]
            if weight_decay != 0:
                g = g + weight_decay * ps[i]
            sq[i] = alpha * sq[i] + (1 - alpha) * g * g
            if centered:
                ga[i] = alpha * ga[i] + (1 - alpha) * g
                avg = np.sqrt(sq[i] - ga[i] * ga[i]) + eps
            else:
                avg = np.sqrt(sq[i]) + eps
            if momentum > 0:
                buf[i] = momentum * buf[i] + g / avg
                ps[i] = ps[i] - lr * buf[i]
            else:
                ps[i] = ps[i] - lr * g / avg
    return ps


def ref_adam(ps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, bias_correction=True,
             decoupled=False):
    b1, b2 = betas
    ps = [p.copy() for p in ps]
    m, v, vmax = ([np.zeros_like(p) for p in ps] for _ in range(3))
    for t in range(1, STEPS + 1):
        gs = grad_fn(ps, t)
        for i in range(len(ps)):
            g = gs[i]
            if decoupled:
                ps[i] = ps[i] * (1 - lr * weight_decay)
            elif weight_decay != 0:
                g = g + weight_decay * ps[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            bc1, bc2 = (1 - b1**t, 1 - b2**t) if bias_correction else (1.0, 1.0)
            if amsgrad:
                vmax[i] = np.maximum(vmax[i], v[i])
                denom = np.sqrt(vmax[i]) / math.sqrt(bc2) + eps
            else:
                denom = np.sqrt(v[i]) / math.sqrt(bc2) + eps
            ps[i] = ps[i] - lr / bc1 * m[i] / denom
    return ps


def ref_adamw(ps, lr, weight_decay=1e-2, **kw):
    return ref_adam(ps, lr, weight_decay=weight_decay, decoupled=True, **kw)


REFERENCES = {"sgd": ref_sgd, "adagrad": ref_adagrad, "rmsprop": ref_rmsprop, "adam": ref_adam, "adamw": ref_adamw}

CONFIGS = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, weight_decay=0.05)),
    ("sgd", dict(lr=0.05, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("sgd", dict(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.2)),
    ("adagrad", dict(lr=0.3)),
    ("adagrad", dict(lr=0.3, lr_decay=0.1, weight_decay=0.05, initial_accumulator_value=0.2, eps=1e-6)),
    ("rmsprop", dict(lr=0.01)),
    ("rmsprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    ("rmsprop", dict(lr=0.01, centered=True)),
    ("rmsprop", dict(lr=0.01, momentum=0.9)),
    ("rmsprop", dict(lr=0.01, alpha=0.8, eps=1e-4, weight_decay=0.1, momentum=0.5, centered=True)),
    ("adam", dict(lr=0.05)),
    ("adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("adam", dict(lr=0.05, amsgrad=True)),
    ("adam", dict(lr=0.05, bias_correction=False)),
    ("adam", dict(lr=0.05, amsgrad=True, weight_decay=0.1, bias_correction=False)),
    ("adamw", dict(lr=0.05)),
    ("adamw", dict(lr=0.05, weight_decay=0.3, amsgrad=True, betas=(0.5, 0.9))),
]
CONFIG_IDS = [f"{n}-" + ",".join(f"{k}={v}" for k, v in kw.items()) for n, kw in CONFIGS]


def run(opt: Optimizer, params, steps=STEPS, dtype=np.float64):
    params = [p.astype(dtype) for p in params]
    state = opt.init(params)
    for t in range(1, steps + 1):
        state = opt.step(params, grad_fn(params, t), state)
    return params, state


@pytest.mark.parametrize("name, hyper", CONFIGS, ids=CONFIG_IDS)
def test_matches_torch_documented_update_rule(name, hyper):
    got, state = run(get_optimizer(name, **hyper), P0)
    assert state.step == STEPS
    want = REFERENCES[name](P0, **hyper)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_presets_are_sgd_with_momentum():
    m, n = get_optimizer("momentum", lr=0.05), get_optimizer("nesterov", lr=0.05)
    assert m.hyper["momentum"] == 0.9 and not m.hyper["nesterov"]
    assert n.hyper["momentum"] == 0.9 and n.hyper["nesterov"]
    for opt, kw in [(m, {}), (n, {"nesterov": True})]:
        got, _ = run(opt, P0)
        for g, w in zip(got, ref_sgd(P0, lr=0.05, momentum=0.9, **kw)):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_torch_defaults():
    h = {name: get_optimizer(name).hyper for name in OPTIMIZERS}
    assert h["sgd"] == dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False)
    assert h["adagrad"] == dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10)
    assert h["rmsprop"] == dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False)
    assert h["adam"] == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                             bias_correction=True)
    assert h["adamw"] == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False)


# --------------------------------------------------------------------------- the contract of every optimizer

# learning rates at which each optimizer settles a well-conditioned quadratic within a few hundred steps
CONTRACT_LR = {"sgd": 0.3, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.5, "rmsprop": 0.01, "adam": 0.05,
               "adamw": 0.05}


def test_contract_lr_table_covers_the_registry():
    assert set(CONTRACT_LR) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_round_trip_and_in_place_updates(name):
    opt = get_optimizer(name, lr=CONTRACT_LR[name])
    params = [p.copy() for p in P0]
    ids = [id(p) for p in params]
    state0 = opt.init(params)
    state = state0
    for t in range(1, 4):
        grads = grad_fn(params, t)
        before = [g.copy() for g in grads]
        state = opt.step(params, grads, state)
        for g, b in zip(grads, before):
            np.testing.assert_array_equal(g, b)  # grads are never modified
    assert type(state) is type(state0) and state.step == 3
    assert [id(p) for p in params] == ids
    for field0, field in zip(state0[1:], state[1:]):  # same arrays, updated in place
        assert [id(a) for a in field0] == [id(a) for a in field]
        assert [(a.shape, a.dtype) for a in field0] == [(a.shape, a.dtype) for a in field]
    # round trip through plain data and back, then resume: identical to never stopping
    saved = copy.deepcopy(state._asdict())
    saved_params = [p.copy() for p in params]
    for t in range(4, STEPS + 1):
        state = opt.step(params, grad_fn(params, t), state)
    resumed = type(state)(**saved)
    for t in range(4, STEPS + 1):
        resumed = opt.step(saved_params, grad_fn(saved_params, t), resumed)
    assert resumed.step == state.step == STEPS
    for a, b in zip(params, saved_params):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_zero_gradient_changes_nothing_without_weight_decay(name, dtype):
    opt = get_optimizer(name, lr=CONTRACT_LR[name], weight_decay=0.0)
    params = [p.astype(dtype) for p in P0]
    before = [p.copy() for p in params]
    state = opt.init(params)
    for _ in range(5):
        state = opt.step(params, [np.zeros_like(p) for p in params], state)
    for p, b in zip(params, before):
        assert p.dtype == dtype
        np.testing.assert_array_equal(p, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_drives_a_convex_quadratic_to_its_minimum(name, dtype):
    opt = get_optimizer(name, lr=CONTRACT_LR[name])
    params = [p.astype(dtype) for p in P0]
    curv = [c.astype(dtype) for c in CURV]

    def loss():
        return sum(float(np.sum(c * p * p)) / 2 for c, p in zip(curv, params))

    start = loss()
    state = opt.init(params)
    for _ in range(600):
        state = opt.step(params, [c * p for c, p in zip(curv, params)], state)
    # RMSprop's normalised step |g|/sqrt(avg g^2) ~ 1 leaves a limit cycle of size ~lr around the minimum
    assert loss() < (1e-4 if name == "rmsprop" else 1e-6) * start
    assert all(p.dtype == dtype for p in params)


# --------------------------------------------------------------------------- many runs in one step


def _columns_match_separate_runs(name, hyper_arrays, hyper_scalar=None, P=4, d=3, steps=6):
    """Params (d, P) with per-run hyperparameters of shape (1, P) == P runs with scalar hyperparameters."""
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal((d, P))
    curv = rng.uniform(0.5, 2.0, (d, P))
    noise = rng.standard_normal((steps, d, P))
    hyper_scalar = hyper_scalar or {}

    def go(opt, p, c, nz):
        state = opt.init([p])
        for t in range(steps):
            state = opt.step([p], [c * p + nz[t]], state)

    together = p0.copy()
    go(get_optimizer(name, **hyper_arrays, **hyper_scalar), together, curv, noise)
    for j in range(P):
        per_run = {k: (tuple(x[0, j] for x in v) if isinstance(v, tuple) else v[0, j])
                   for k, v in hyper_arrays.items()}
        alone = p0[:, j].copy()
        go(get_optimizer(name, **per_run, **hyper_scalar), alone, curv[:, j], noise[:, :, j])
        np.testing.assert_allclose(together[:, j], alone, rtol=1e-13, atol=1e-15)


LRS = np.array([[0.01, 0.03, 0.1, 0.2]])


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_per_run_learning_rates_equal_separate_runs(name):
    _columns_match_separate_runs(name, {"lr": LRS * (0.1 if name == "rmsprop" else 1.0)})


@pytest.mark.parametrize("name, arrays, scalars", [
    ("sgd", {"momentum": np.array([[0.0, 0.5, 0.9, 0.99]]), "weight_decay": np.array([[0.0, 0.1, 0.0, 0.2]])},
     {"dampening": 0.5, "lr": 0.05}),
    ("nesterov", {"momentum": np.array([[0.1, 0.5, 0.9, 0.99]])}, {"lr": 0.05, "weight_decay": 0.1}),
    ("adagrad", {"lr_decay": np.array([[0.0, 0.1, 0.5, 1.0]]), "eps": np.array([[1e-10, 1e-3, 0.1, 1.0]])},
     {"weight_decay": 0.1}),
    ("rmsprop", {"alpha": np.array([[0.5, 0.9, 0.99, 0.0]]), "momentum": np.array([[0.0, 0.5, 0.9, 0.2]])},
     {"centered": True, "weight_decay": 0.1}),
    ("adam", {"betas": (np.array([[0.0, 0.5, 0.9, 0.95]]), np.array([[0.9, 0.99, 0.999, 0.5]]))},
     {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
    ("adamw", {"weight_decay": np.array([[0.0, 0.1, 1.0, 3.0]]), "lr": LRS}, {}),
], ids=["sgd", "nesterov", "adagrad", "rmsprop", "adam", "adamw"])
def test_other_per_run_hyperparameters_equal_separate_runs(name, arrays, scalars):
    _columns_match_separate_runs(name, arrays, scalars)


def test_replica_first_params_with_per_replica_lr_and_float32():
    rng = np.random.default_rng(6)
    S = 3
    W = rng.standard_normal((S, 4, 2)).astype(np.float32)
    b = rng.standard_normal((S, 1, 2)).astype(np.float32)
    lr = np.array([0.01, 0.05, 0.2]).reshape(S, 1, 1)
    opt = get_optimizer("adam", lr=lr, weight_decay=0.1)
    params = [W.copy(), b.copy()]
    state = opt.init(params)
    for _ in range(4):
        state = opt.step(params, [p * 2.0 - 1.0 for p in params], state)
    assert all(p.dtype == np.float32 for p in params)
    for s in range(S):
        alone = [W[s].copy(), b[s].copy()]
        one = get_optimizer("adam", lr=float(lr[s, 0, 0]), weight_decay=0.1)
        st = one.init(alone)
        for _ in range(4):
            st = one.step(alone, [p * 2.0 - 1.0 for p in alone], st)
        np.testing.assert_allclose(params[0][s], alone[0], rtol=1e-6)
        np.testing.assert_allclose(params[1][s], alone[1], rtol=1e-6)


# every kernel branch that runs block by block: weight decay's extra work array or none, each state array
LARGE_CONFIGS = [
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.1)),
    ("sgd-plain", dict(lr=0.1)),
    ("nesterov", dict(lr=0.1, weight_decay=0.1)),
    ("adagrad", dict(lr=0.1, weight_decay=0.1)),
    ("adagrad-plain", dict(lr=0.1)),
    ("rmsprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)),
    ("rmsprop-plain", dict(lr=0.01)),
    ("adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("adam-plain", dict(lr=0.01)),
    ("adamw", dict(lr=0.01)),
]


@pytest.mark.parametrize("name, hyper", LARGE_CONFIGS, ids=[c[0] for c in LARGE_CONFIGS])
def test_large_params_updated_block_by_block_equal_whole_array_updates(name, hyper, monkeypatch):
    rng = np.random.default_rng(11)
    n = 4 * optim.BLOCK + 123  # large enough to be blocked, with a ragged last block
    p0 = [rng.standard_normal((2, n // 2)).astype(np.float32), rng.standard_normal(5)]
    grads = [[rng.standard_normal(p.shape).astype(p.dtype) for p in p0] for _ in range(3)]

    def go():
        params = [p.copy() for p in p0]
        opt = get_optimizer(name.split("-")[0], **hyper)
        state = opt.init(params)
        for g in grads:
            state = opt.step(params, g, state)
        return params

    blocked = go()
    monkeypatch.setattr(optim, "BLOCK", 10**12)
    whole = go()
    for a, b in zip(blocked, whole):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name, hyper", CONFIGS, ids=CONFIG_IDS)
def test_words_per_param_counts_the_state_the_step_keeps(name, hyper):
    opt = get_optimizer(name, **hyper)
    p = np.zeros((3, 4), dtype=np.float32)
    state = opt.init([p])
    kept = sum(len(v) for k, v in state._asdict().items() if k not in ("step", "scratch"))
    assert all(a.shape == p.shape for k, v in state._asdict().items() if k not in ("step", "scratch") for a in v)
    assert opt.words_per_param == 3 + 2 * kept  # p, g read; p written; each state array read and written
    assert opt.bytes_per_param(np.float32) == 4 * opt.words_per_param
    assert opt.bytes_per_param(np.float64) == 8 * opt.words_per_param


def test_every_optimizer_states_its_traffic():
    assert {name: get_optimizer(name).bytes_per_param() for name in OPTIMIZERS} == {
        "sgd": 12, "momentum": 20, "nesterov": 20, "adagrad": 20, "rmsprop": 20, "adam": 28, "adamw": 28}
    with pytest.raises(TypeError):  # no default: a new optimizer must say what a step moves
        Optimizer("new", {}, lambda params: None, lambda params, grads, state: state)


@pytest.mark.parametrize("name, hyper", LARGE_CONFIGS, ids=[c[0] for c in LARGE_CONFIGS])
def test_kernel_threads_give_the_same_bits(name, hyper, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PARALLEL_ELEMS", 2 * optim.BLOCK)
    rng = np.random.default_rng(12)
    n = 6 * optim.BLOCK + 77
    p0 = [rng.standard_normal(n).astype(np.float32)]
    grads = [[rng.standard_normal(n).astype(np.float32)] for _ in range(3)]

    def go():
        params = [p.copy() for p in p0]
        opt = get_optimizer(name.split("-")[0], **hyper)
        state = opt.init(params)
        for g in grads:
            state = opt.step(params, g, state)
        return params[0]

    one = go()
    with parallel.kernel_threads(3):
        three = go()
    np.testing.assert_array_equal(one, three)


# --------------------------------------------------------------------------- the claims' exact statements


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_first_step_is_lr_times_sign_with_bias_correction(amsgrad):
    g = np.array([1e-3, -0.5, 3.0, -200.0, 7e4])
    for bias_correction, size in [(True, 0.01), (False, 0.01 * (1 - 0.9) / math.sqrt(1 - 0.999))]:
        p = np.zeros_like(g)
        opt = get_optimizer("adam", lr=0.01, eps=1e-14, amsgrad=amsgrad, bias_correction=bias_correction)
        opt.step([p], [g], opt.init([p]))
        np.testing.assert_allclose(p, -size * np.sign(g), rtol=1e-9)
    assert 0.01 * (1 - 0.9) / math.sqrt(1 - 0.999) == pytest.approx(0.0316, abs=1e-4)


def test_adagrad_step_shrinks_as_lr_over_sqrt_t_under_constant_gradient():
    g = np.array([0.1, -2.0, 50.0])
    p = np.zeros_like(g)
    opt = get_optimizer("adagrad", lr=0.5)
    state = opt.init([p])
    for t in range(1, 51):
        before = p.copy()
        state = opt.step([p], [g], state)
        np.testing.assert_allclose(p - before, -0.5 / math.sqrt(t) * np.sign(g), rtol=1e-8)
    # and with lr_decay the step is lr / (1 + (t-1) lr_decay) / sqrt(t)
    p = np.zeros_like(g)
    opt = get_optimizer("adagrad", lr=0.5, lr_decay=0.2)
    state = opt.init([p])
    for t in range(1, 6):
        before = p.copy()
        state = opt.step([p], [g], state)
        np.testing.assert_allclose(p - before, -0.5 / (1 + 0.2 * (t - 1)) / math.sqrt(t) * np.sign(g), rtol=1e-8)


# --------------------------------------------------------------------------- clipping


def _grads(rng, shapes, dtype=np.float64):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
def test_clip_grad_norm_torch_semantics(norm_type):
    rng = np.random.default_rng(7)
    grads = _grads(rng, [(3, 4), (5,), ()])
    flat = np.concatenate([g.ravel() for g in grads])
    total = np.max(np.abs(flat)) if norm_type == math.inf else np.sum(np.abs(flat) ** norm_type) ** (1 / norm_type)
    before = [g.copy() for g in grads]
    got = clip_grad_norm_(grads, 0.5, norm_type=norm_type)
    assert isinstance(got, float) and got == pytest.approx(total, rel=1e-12)
    coef = 0.5 / (total + 1e-6)
    for g, b in zip(grads, before):
        np.testing.assert_allclose(g, b * coef, rtol=1e-12)
    # under the threshold nothing changes, bit for bit
    kept = [g.copy() for g in grads]
    assert clip_grad_norm_(grads, 10.0, norm_type=norm_type) == pytest.approx(0.5, rel=1e-5)
    for g, k in zip(grads, kept):
        np.testing.assert_array_equal(g, k)


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_clip_grad_norm_per_run_equals_clipping_each_run_alone(norm_type):
    rng = np.random.default_rng(8)
    # (d, P) layout: runs on axis 1 (also as -1)
    for run_axes in [(1,), (-1,)]:
        grads = _grads(rng, [(3, 6), (2, 6)])
        grads[0][:, 0] *= 1e-3  # one run under the threshold
        alone = [[g[:, j].copy() for g in grads] for j in range(6)]
        totals = clip_grad_norm_(grads, 1.0, norm_type, run_axes=run_axes)
        assert totals.shape == (6,)
        for j in range(6):
            assert totals[j] == pytest.approx(clip_grad_norm_(alone[j], 1.0, norm_type), rel=1e-12)
            for g, a in zip(grads, alone[j]):
                np.testing.assert_allclose(g[:, j], a, rtol=1e-12)
    # replica-first MLP layout: runs on axis 0, float32 stays float32
    grads = _grads(rng, [(4, 5, 3), (4, 1, 3)], np.float32)
    alone = [[g[s].copy() for g in grads] for s in range(4)]
    totals = clip_grad_norm_(grads, 0.7, norm_type, run_axes=(0,))
    assert all(g.dtype == np.float32 for g in grads)
    for s in range(4):
        assert totals[s] == pytest.approx(clip_grad_norm_(alone[s], 0.7, norm_type), rel=1e-6)
        for g, a in zip(grads, alone[s]):
            np.testing.assert_allclose(g[s], a, rtol=1e-6)


def test_clip_grad_norm_two_run_axes_in_the_given_order():
    rng = np.random.default_rng(9)
    g = rng.standard_normal((3, 4, 5))
    ref = g.copy()
    totals = clip_grad_norm_([g], 1.0, run_axes=(2, 0))
    assert totals.shape == (5, 3)
    for i in range(3):
        for k in range(5):
            col = ref[i, :, k].copy()
            assert totals[k, i] == pytest.approx(clip_grad_norm_([col], 1.0), rel=1e-12)
            np.testing.assert_allclose(g[i, :, k], col, rtol=1e-12)


def test_clip_grad_value():
    g = [np.array([-3.0, -0.5, 0.2, 4.0]), np.array([[2.0, -2.0]], dtype=np.float32)]
    clip_grad_value_(g, 1.0)
    np.testing.assert_array_equal(g[0], [-1.0, -0.5, 0.2, 1.0])
    np.testing.assert_array_equal(g[1], [[1.0, -1.0]])
    assert g[1].dtype == np.float32
    per_run = np.array([[5.0, 3.0, 0.5]])
    g = [np.full((2, 3), 4.0)]
    clip_grad_value_(g, per_run)
    np.testing.assert_array_equal(g[0], [[4.0, 3.0, 0.5]] * 2)


def test_clip_errors_and_empty():
    with pytest.raises(DlbenchError):
        clip_grad_norm_([np.ones(3)], 1.0, norm_type=0)
    with pytest.raises(DlbenchError):
        clip_grad_norm_([np.ones((2, 3))], 1.0, run_axes=(1, -1))
    with pytest.raises(DlbenchError):
        clip_grad_value_([np.ones(3)], -1.0)
    assert clip_grad_norm_([], 1.0) == 0.0


# --------------------------------------------------------------------------- registry and errors


def test_registry_and_user_errors():
    assert list(OPTIMIZERS) == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]
    with pytest.raises(UnknownName, match="valid: adagrad, adam"):
        get_optimizer("lion")
    with pytest.raises(DlbenchError, match="unknown hyperparameter 'beta1' for optimizer 'adam'"):
        get_optimizer("adam", beta1=0.9)
    bad = [("sgd", dict(lr=-1.0)), ("sgd", dict(nesterov=True)), ("sgd", dict(momentum=0.9, dampening=0.1,
                                                                             nesterov=True)),
           ("adam", dict(betas=(0.9, 1.0))), ("adam", dict(betas=0.9)), ("rmsprop", dict(alpha=-0.1)),
           ("adagrad", dict(eps=float("nan"))), ("adamw", dict(lr="fast")),
           ("sgd", dict(lr=np.array([[0.1, -0.1]])))]
    for name, hyper in bad:
        with pytest.raises(DlbenchError):
            get_optimizer(name, **hyper)
    opt = get_optimizer("sgd", lr=np.ones((1, 3)))
    with pytest.raises(DlbenchError, match="does not broadcast"):
        opt.init([np.zeros((2, 4))])
    with pytest.raises(DlbenchError, match="does not broadcast"):
        opt.init([np.zeros((3,))])  # would broadcast UP to (1, 3): no in-place update possible
    with pytest.raises(DlbenchError, match="float ndarray"):
        get_optimizer("adam").init([np.zeros(3, dtype=np.int64)])


# --------------------------------------------------------------------------- torch itself, where installed


def test_matches_torch_optim():
    torch = pytest.importorskip("torch")
    classes = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop,
               "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    for name, hyper in CONFIGS:
        if hyper.get("bias_correction") is False:
            continue  # not a torch option
        got, _ = run(get_optimizer(name, **hyper), P0)
        tp = [torch.tensor(p.copy(), dtype=torch.float64, requires_grad=True) for p in P0]
        opt = classes[name](tp, **hyper)
        for t in range(1, STEPS + 1):
            with torch.no_grad():
                for p, g in zip(tp, grad_fn([p.detach().numpy() for p in tp], t)):
                    p.grad = torch.from_numpy(np.ascontiguousarray(g))
            opt.step()
        for g, p in zip(got, tp):
            np.testing.assert_allclose(g, p.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=f"{name} {hyper}")
    # clipping
    rng = np.random.default_rng(10)
    for norm_type in (2.0, 1.0, math.inf):
        grads = _grads(rng, [(3, 4), (5,)])
        tp = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
        for p, g in zip(tp, grads):
            p.grad = torch.tensor(g)
        want = float(torch.nn.utils.clip_grad_norm_(tp, 0.5, norm_type=norm_type))
        assert clip_grad_norm_(grads, 0.5, norm_type) == pytest.approx(want, rel=1e-12)
        for p, g in zip(tp, grads):
            np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12)
