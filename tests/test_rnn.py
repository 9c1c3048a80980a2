"""The recurrent layer: torch.nn.RNN parity (forward, h_n, BPTT gradients, with and without packed lengths),
finite differences of every gradient for every norm, padding that changes nothing, the per-step norms against
a step-by-step reference, replicas, and the recurrent net trained by the trainer."""

import numpy as np
import pytest

from dlbench.data import make_dataset
from dlbench.errors import DlbenchError
from dlbench.nn.losses import mse
from dlbench.nn.optim import clip_grad_norm_, clip_grad_value_, get_optimizer
from dlbench.nn.rnn import RNN, RNNNet, RNNNetSpec, RNNSpec, sequence_mask
from dlbench.nn.train import train
from tests.test_layers_losses import direction_check, numeric_grads

F, H, T, N = 3, 4, 5, 4
LENGTHS = np.array([5, 2, 4, 1])


def _rnn(**kw):
    return RNN(RNNSpec(kw.pop("input_size", F), kw.pop("hidden_size", H), dtype=np.float64, **kw))


def _perturbed(params, rng, scale=0.1):
    for p in params:  # gains off 1, so their gradients are tested in general position
        p += scale * rng.standard_normal(p.shape)
    return params


# ------------------------------------------------------------------------------------------------ torch parity

PARITY = [  # (nonlinearity, batch_first, num_layers, lengths, h0)
    ("tanh", False, 1, False, False),
    ("tanh", True, 2, False, True),
    ("relu", False, 2, False, False),
    ("tanh", False, 1, True, False),
    ("tanh", True, 2, True, True),
    ("relu", True, 1, True, True),
    ("relu", False, 2, True, False),
]


@pytest.mark.parametrize("nonlinearity,batch_first,num_layers,lengths,h0", PARITY,
                         ids=[f"{a}-{'bf' if b else 'tm'}-L{c}{'-lengths' if d else ''}{'-h0' if e else ''}"
                              for a, b, c, d, e in PARITY])
def test_forward_and_gradients_match_torch(nonlinearity, batch_first, num_layers, lengths, h0):
    torch = pytest.importorskip("torch")
    pack = torch.nn.utils.rnn
    rnn = _rnn(nonlinearity=nonlinearity, batch_first=batch_first, num_layers=num_layers)
    S = 2
    params = rnn.init([3, 4])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((S, N, T, F) if batch_first else (S, T, N, F))
    x_lengths = np.stack([LENGTHS, LENGTHS[::-1]]) if lengths else None
    h_0 = rng.standard_normal((S, num_layers, N, H)) if h0 else None
    out, h_n, cache = rnn.forward(params, x, lengths=x_lengths, h0=h_0)
    g_out, g_hn = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    grads, dx, dh0 = rnn.backward(params, cache, g_out, g_hn, need_input_grads=True)
    for s in range(S):
        net = torch.nn.RNN(F, H, num_layers=num_layers, nonlinearity=nonlinearity, batch_first=batch_first,
                           dtype=torch.float64)
        with torch.no_grad():
            for name, p in zip(rnn.param_names, params):
                getattr(net, name).copy_(torch.from_numpy(p[s]))
        xt = torch.tensor(x[s], requires_grad=True)
        ht = torch.tensor(h_0[s], requires_grad=True) if h0 else None
        if lengths:
            packed = pack.pack_padded_sequence(xt, torch.from_numpy(x_lengths[s]), batch_first=batch_first,
                                               enforce_sorted=False)
            out_p, hn_t = net(packed, ht)
            out_t, _ = pack.pad_packed_sequence(out_p, batch_first=batch_first, total_length=T)
        else:
            out_t, hn_t = net(xt, ht)
        np.testing.assert_allclose(out[s], out_t.detach().numpy(), rtol=0, atol=1e-14)
        np.testing.assert_allclose(h_n[s], hn_t.detach().numpy(), rtol=0, atol=1e-14)
        loss = (out_t * torch.from_numpy(g_out[s])).sum() + (hn_t * torch.from_numpy(g_hn[s])).sum()
        loss.backward()
        for name, g in zip(rnn.param_names, grads):
            np.testing.assert_allclose(g[s], getattr(net, name).grad.numpy(), rtol=0, atol=1e-13, err_msg=name)
        np.testing.assert_allclose(dx[s], xt.grad.numpy(), rtol=0, atol=1e-13)
        if h0:
            np.testing.assert_allclose(dh0[s], ht.grad.numpy(), rtol=0, atol=1e-13)


def test_init_draws_torch_s_distribution_in_torch_s_order():
    rnn = RNN(RNNSpec(3, 16, num_layers=2))
    params = rnn.init([0])
    assert rnn.param_names == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                               "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"]
    assert [p.shape for p in params] == [(1, 16, 3), (1, 16, 16), (1, 16), (1, 16), (1, 16, 16), (1, 16, 16),
                                         (1, 16), (1, 16)]
    rng = np.random.default_rng(0)
    for p in params:
        np.testing.assert_array_equal(p[0], rng.uniform(-0.25, 0.25, p.shape[1:]).astype(np.float32))
    assert rnn.n_params == 16 * 3 + 16 * 16 + 32 + 16 * 16 * 2 + 32


# ------------------------------------------------------------------------------------------------ finite differences

FD = [  # (norm, nonlinearity, lengths, num_layers, train)
    ("none", "tanh", False, 1, True),
    ("none", "relu", True, 2, True),
    ("layer", "tanh", False, 1, True),
    ("layer", "tanh", True, 2, True),
    ("batch", "tanh", False, 1, True),
    ("batch", "tanh", True, 2, True),
    ("batch", "tanh", True, 1, False),
]


@pytest.mark.parametrize("norm,nonlinearity,lengths,num_layers,train_mode", FD,
                         ids=[f"{a}-{b}{'-lengths' if c else ''}-L{d}{'' if e else '-eval'}" for a, b, c, d, e in FD])
def test_every_gradient_matches_finite_differences(norm, nonlinearity, lengths, num_layers, train_mode):
    rnn = _rnn(norm=norm, nonlinearity=nonlinearity, num_layers=num_layers)
    rng = np.random.default_rng(1)
    params = _perturbed(rnn.init([5, 6]), rng)
    state = rnn.init_state(2)
    x = rng.standard_normal((T, N, F))
    ls = np.array([[5, 2, 4, 3], [3, 5, 5, 2]]) if lengths else None
    if not train_mode:  # running statistics from a few batches, and a longer eval sequence than any trained
        for _ in range(3):
            rnn.forward(params, rng.standard_normal((T - 2, N, F)), state, lengths=None)
    h0 = rng.standard_normal((2, num_layers, N, H))
    R, Rh = rng.standard_normal((2, T, N, H)), rng.standard_normal((2, num_layers, N, H))
    if lengths:
        R[~np.broadcast_to(sequence_mask(ls, T)[..., None], R.shape)] = 0  # padded outputs are constant 0

    def f():
        out, h_n, _ = rnn.forward(params, x, state if not train_mode else rnn.init_state(2), train_mode,
                                  lengths=ls, h0=h0)
        return float(np.sum(out * R) + np.sum(h_n * Rh))

    out, h_n, cache = rnn.forward(params, x, state if not train_mode else rnn.init_state(2), train_mode,
                                  lengths=ls, h0=h0)
    grads, dx, dh0 = rnn.backward(params, cache, R, Rh, need_input_grads=True)
    want = numeric_grads(f, [*params, x, h0])
    for name, got, w in zip([*rnn.param_names, "x", "h0"], [*grads, dx.sum(axis=0), dh0], want):
        assert got.shape == w.shape, name
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("norm", ["none", "layer", "batch"])
def test_backward_random_direction_on_a_bigger_layer(norm):
    rnn = _rnn(input_size=8, hidden_size=32, norm=norm, num_layers=2)
    rng = np.random.default_rng(2)
    params = rnn.init([1, 2])
    x = rng.standard_normal((2, 24, 16, 8))
    ls = rng.integers(1, 25, (2, 16))
    R = rng.standard_normal((2, 24, 16, 32)) * sequence_mask(ls, 24)[..., None]

    def f():
        return float(np.sum(rnn.forward(params, x, lengths=ls)[0] * R))

    grads = rnn.backward(params, rnn.forward(params, x, lengths=ls)[2], R)
    fd, an = direction_check(f, params, grads, rng, eps=1e-7)  # batch norm over few sequences is curved
    assert fd == pytest.approx(an, rel=1e-6)


def test_bptt_through_a_linear_regime_is_the_power_of_the_recurrent_weight():
    # relu, W_hh = rho I, no input, h_0 > 0: h_t = rho^t h_0, so dh_T/dh_0 = rho^T -- the geometric growth
    # (rho > 1) or decay (rho < 1) of BPTT's gradients
    rnn = _rnn(nonlinearity="relu", bias=False, input_size=1, hidden_size=3)
    params = rnn.init([0, 1])
    rho = np.array([0.5, 1.5])
    params[0][...] = 0
    params[1][...] = rho[:, None, None] * np.eye(3)
    for steps in (1, 10, 30):
        x = np.zeros((steps, 2, 1))
        out, h_n, cache = rnn.forward(params, x, h0=np.ones((1, 2, 3)))
        np.testing.assert_allclose(h_n[:, 0], rho[:, None, None] ** steps * np.ones((2, 2, 3)), rtol=1e-12)
        _, _, dh0 = rnn.backward(params, cache, None, np.ones_like(h_n), need_input_grads=True)
        np.testing.assert_allclose(dh0[:, 0], rho[:, None, None] ** steps * np.ones((2, 2, 3)), rtol=1e-12)


# ------------------------------------------------------------------------------------------------ padding

@pytest.mark.parametrize("norm", ["none", "layer", "batch"])
def test_padding_changes_nothing(norm):
    rnn = _rnn(norm=norm, num_layers=2)
    rng = np.random.default_rng(3)
    params = _perturbed(rnn.init([7]), rng)
    x = rng.standard_normal((T, N, F))
    valid = sequence_mask(LENGTHS, T)[..., None]
    state_a, state_b, state_c = rnn.init_state(1), rnn.init_state(1), rnn.init_state(1)
    out, h_n, cache = rnn.forward(params, x, state_a, lengths=LENGTHS)
    g = rng.standard_normal(out.shape)
    grads = rnn.backward(params, cache, g, rng.standard_normal(h_n.shape) * 0 + 1)
    # garbage in the padded inputs, and gradients at the padded outputs
    junk = np.where(valid, x, np.array([np.nan, np.inf, 1e300])[np.arange(T * N * F) % 3].reshape(T, N, F))
    out2, h_n2, cache2 = rnn.forward(params, junk, state_b, lengths=LENGTHS)
    grads2 = rnn.backward(params, cache2, np.where(valid, g, 1e6), np.ones_like(h_n))
    # three more padded steps
    longer = np.concatenate([x, rng.standard_normal((3, N, F))])
    out3, h_n3, cache3 = rnn.forward(params, longer, state_c, lengths=LENGTHS)
    grads3 = rnn.backward(params, cache3, np.concatenate([g, rng.standard_normal((1, 3, N, H))], axis=1),
                          np.ones_like(h_n))
    assert not (out * ~valid).any()
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(h_n2, h_n)
    np.testing.assert_allclose(out3[:, :T], out, rtol=1e-13, atol=1e-15)
    assert not out3[:, T:].any()
    np.testing.assert_allclose(h_n3, h_n, rtol=1e-13, atol=1e-15)
    for name, a, b, c in zip(rnn.param_names, grads, grads2, grads3):
        np.testing.assert_array_equal(a, b, err_msg=name)
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-14, err_msg=name)
    for key in state_a[0]:  # running statistics of the valid steps only
        np.testing.assert_array_equal(state_a[0][key], state_b[0][key])
        np.testing.assert_allclose(state_c[0][key][:, :T], state_a[0][key], rtol=1e-13)


def test_a_sequence_alone_equals_it_in_a_padded_batch_without_batch_norm():
    for norm in ("none", "layer"):
        rnn = _rnn(norm=norm)
        rng = np.random.default_rng(4)
        params = _perturbed(rnn.init([8]), rng)
        x = rng.standard_normal((T, N, F))
        out, h_n, _ = rnn.forward(params, x, lengths=LENGTHS)
        for n, L in enumerate(LENGTHS):
            alone, h_alone, _ = rnn.forward(params, x[:L, n:n + 1])
            np.testing.assert_allclose(out[:, :L, n:n + 1], alone, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(h_n[:, :, n:n + 1], h_alone, rtol=1e-13, atol=1e-15)


# ------------------------------------------------------------------------------------------------ norms, step by step

def _reference(params, x, lengths, norm, state=None, train_mode=True, eps=1e-5, momentum=0.1):
    """One replica, one layer, tanh: the cell written step by step and sample by sample."""
    W_ih, W_hh, b_ih, b_hh = (p[0] for p in params[:4])
    gains = [p[0] for p in params[4:]]
    T_, N_ = x.shape[:2]
    h = np.zeros((N_, W_hh.shape[0]))
    outs = np.zeros((T_, N_, W_hh.shape[0]))
    for t in range(T_):
        live = [n for n in range(N_) if t < lengths[n]]
        xi = x[t] @ W_ih.T
        hh = h @ W_hh.T
        if norm == "layer":
            u = xi + hh
            a = np.stack([gains[0] * (r - r.mean()) / np.sqrt(r.var() + eps) for r in u]) + b_ih + b_hh
        else:
            terms = []
            for v, key, g in ((xi, "ih", gains[0]), (hh, "hh", gains[1])):
                if train_mode:
                    mu, var = v[live].mean(axis=0), v[live].var(axis=0)
                    if len(live) >= 2:
                        rm, rv = state[f"running_mean_{key}"][0, t], state[f"running_var_{key}"][0, t]
                        rm[...] = (1 - momentum) * rm + momentum * mu
                        rv[...] = (1 - momentum) * rv + momentum * var * len(live) / (len(live) - 1)
                else:
                    at = min(t, state[f"running_mean_{key}"].shape[1] - 1)
                    mu, var = state[f"running_mean_{key}"][0, at], state[f"running_var_{key}"][0, at]
                terms.append(g * (v - mu) / np.sqrt(var + eps))
            a = terms[0] + terms[1] + b_ih + b_hh
        new = np.tanh(a)
        for n in live:
            h[n] = new[n]
            outs[t, n] = new[n]
    return outs, h


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_norms_inside_the_cell_follow_their_definitions(norm):
    rnn = _rnn(norm=norm)
    rng = np.random.default_rng(5)
    params = _perturbed(rnn.init([9]), rng)
    x = rng.standard_normal((T, N, F))
    state = rnn.init_state(1)
    out, h_n, _ = rnn.forward(params, x, state, lengths=LENGTHS)
    ref_state = {k: np.stack([np.zeros((1, T, H)), np.ones((1, T, H))][k.startswith("running_var")])
                 for k in ("running_mean_ih", "running_var_ih", "running_mean_hh", "running_var_hh")}
    want, h_want = _reference(params, x, LENGTHS, norm, ref_state)
    np.testing.assert_allclose(out[0], want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n[0, 0], h_want, rtol=1e-12, atol=1e-14)
    if norm == "batch":
        for k in ref_state:  # the last step has a single running sequence: its statistics stay at (0, 1)
            np.testing.assert_allclose(state[0][k], ref_state[k], rtol=1e-12, atol=1e-14, err_msg=k)
        assert (state[0]["running_mean_ih"][:, -1] == 0).all() and (state[0]["running_var_ih"][:, -1] == 1).all()
        # eval mode on a longer sequence: steps past the trained ones use the last trained step's statistics
        x_long = rng.standard_normal((T + 2, N, F))
        out_eval, _, _ = rnn.forward(params, x_long, state, train=False)
        want_eval, _ = _reference(params, x_long, np.full(N, T + 2), norm, ref_state, train_mode=False)
        np.testing.assert_allclose(out_eval[0], want_eval, rtol=1e-12, atol=1e-14)


def test_batch_norm_state_grows_with_the_longest_sequence_and_eval_needs_it():
    rnn = _rnn(norm="batch")
    params, state = rnn.init([0]), rnn.init_state(1)
    assert state[0]["running_mean_hh"].shape == (1, 0, H)
    rnn.forward(params, np.ones((3, N, F)), state)
    rnn.forward(params, np.ones((2, N, F)), state)
    assert state[0]["running_var_ih"].shape == (1, 3, H)
    with pytest.raises(ValueError, match="needs the state"):
        rnn.forward(params, np.ones((3, N, F)), train=False)


# ------------------------------------------------------------------------------------------------ replicas, buffers

@pytest.mark.parametrize("norm", ["none", "layer", "batch"])
def test_replicas_are_separate_layers(norm):
    rnn = RNN(RNNSpec(F, 8, num_layers=2, norm=norm, batch_first=True))
    many, one = rnn.init([5, 6, 7]), rnn.init([6])
    for a, b in zip(many, one):
        np.testing.assert_array_equal(a[1], b[0])
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, N, T, F)).astype(np.float32)
    ls = rng.integers(1, T + 1, (3, N))
    s_many, s_one = rnn.init_state(3), rnn.init_state(1)
    out_many, hn_many, c_many = rnn.forward(many, x, s_many, lengths=ls)
    out_one, hn_one, c_one = rnn.forward(one, x[1:2], s_one, lengths=ls[1:2])
    np.testing.assert_allclose(out_many[1], out_one[0], rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(out_many.shape).astype(np.float32)
    for name, a, b in zip(rnn.param_names, rnn.backward(many, c_many, g), rnn.backward(one, c_one, g[1:2])):
        np.testing.assert_allclose(a[1], b[0], rtol=1e-4, atol=1e-5, err_msg=name)
    for a, b in zip(s_many, s_one):
        for k in a:
            np.testing.assert_allclose(a[k][1], b[k][0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm", ["none", "layer", "batch"])
def test_reuse_gives_the_fresh_results(norm):
    rnn = RNN(RNNSpec(F, 8, num_layers=2, norm=norm))
    params = rnn.init([0, 1])
    rng = np.random.default_rng(7)
    for round_ in range(2):  # the second round runs on recycled buffers
        x = rng.standard_normal((T, N, F)).astype(np.float32)
        ls = LENGTHS if round_ else None
        fresh_out, fresh_hn, c1 = rnn.forward(params, x, lengths=ls)
        fresh_out, fresh_hn = fresh_out.copy(), fresh_hn.copy()
        g = rng.standard_normal(fresh_out.shape).astype(np.float32)
        g1 = rnn.backward(params, c1, g)
        out, hn, c2 = rnn.forward(params, x, lengths=ls, reuse=True)
        np.testing.assert_array_equal(out, fresh_out)
        np.testing.assert_array_equal(hn, fresh_hn)
        for a, b in zip(g1, rnn.backward(params, c2, g, reuse=True)):
            np.testing.assert_array_equal(a, b)


def test_gradient_clipping_works_on_the_layer_s_gradients():
    rnn = RNN(RNNSpec(F, 8))
    params = rnn.init([0, 1])
    params[1] *= 8  # a recurrent spectral radius well above 1: large gradients
    x = np.random.default_rng(8).standard_normal((30, N, F)).astype(np.float32)
    out, h_n, cache = rnn.forward(params, x)
    grads = rnn.backward(params, cache, np.ones_like(out))
    before = np.sqrt(sum((g.astype(np.float64) ** 2).reshape(2, -1).sum(axis=1) for g in grads))
    total = clip_grad_norm_(grads, 1.0, run_axes=(0,))
    np.testing.assert_allclose(total, before, rtol=1e-5)
    after = np.sqrt(sum((g.astype(np.float64) ** 2).reshape(2, -1).sum(axis=1) for g in grads))
    np.testing.assert_allclose(after, np.minimum(before, 1.0), rtol=1e-4)
    clip_grad_value_(grads, 0.01)
    assert max(np.abs(g).max() for g in grads) <= 0.01


def test_bad_inputs_are_one_line_errors():
    rnn = _rnn()
    params = rnn.init([0])
    x = np.zeros((T, N, F))
    with pytest.raises(DlbenchError, match=r"lengths must be in 1 \.\. 5"):
        rnn.forward(params, x, lengths=np.array([6, 1, 1, 1]))
    with pytest.raises(DlbenchError, match=r"lengths must be integers of shape \(4,\) or \(1, 4\)"):
        rnn.forward(params, x, lengths=np.array([1, 2]))
    with pytest.raises(DlbenchError, match=r"recurrent input must be \(T, N, F\) or \(S, T, N, F\) with F = 3"):
        rnn.forward(params, np.zeros((T, N, 2)))
    with pytest.raises(DlbenchError, match="h0 must be"):
        rnn.forward(params, x, h0=np.zeros((2, N, H)))
    with pytest.raises(DlbenchError, match="unknown nonlinearity 'gelu'; valid: tanh, relu"):
        RNN(RNNSpec(F, H, nonlinearity="gelu"))
    with pytest.raises(DlbenchError, match="unknown recurrent norm 'group'; valid: none, layer, batch"):
        RNN(RNNSpec(F, H, norm="group"))
    with pytest.raises(DlbenchError, match="recurrent layer norm has no hyperparameter momentum"):
        RNN(RNNSpec(F, H, norm="layer", norm_hyper={"momentum": 0.1}))
    with pytest.raises(DlbenchError, match="hidden_size must be an integer >= 1"):
        RNN(RNNSpec(F, 0))


# ------------------------------------------------------------------------------------------------ the net

@pytest.mark.parametrize("head,norm", [("last", "none"), ("last", "batch"), ("all", "layer"), ("all", "none")])
def test_net_gradients_match_finite_differences(head, norm):
    net = RNNNet(RNNNetSpec(F, H, 2, norm=norm, head=head, dtype=np.float64))
    rng = np.random.default_rng(9)
    params = _perturbed(net.init([1, 2]), rng)
    x = rng.standard_normal((N, T, F))
    ls = np.array([[5, 2, 4, 3], [3, 5, 5, 1]])
    out, cache = net.forward(params, x, lengths=ls)
    R = rng.standard_normal(out.shape)
    if head == "all":
        assert out.shape == (2, N, T, 2)
        assert not (out * ~np.swapaxes(sequence_mask(ls, T), -1, -2)[..., None]).any()
    f = lambda: float(np.sum(net.forward(params, x, lengths=ls)[0] * R))  # noqa: E731
    grads = net.backward(params, cache, R)
    for name, got, want in zip(net.param_names, grads, numeric_grads(f, params)):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8, err_msg=name)


def test_net_head_reads_each_sequence_s_last_valid_state():
    net = RNNNet(RNNNetSpec(F, H, 1, dtype=np.float64))
    params = net.init([3])
    x = np.random.default_rng(10).standard_normal((N, T, F))
    out, _ = net.forward(params, x, lengths=LENGTHS)
    for n, L in enumerate(LENGTHS):
        alone, _, _ = net.rnn.forward(params[:4], x[n:n + 1, :L])
        np.testing.assert_allclose(out[0, n], alone[0, 0, -1] @ params[4][0] + params[5][0, 0], rtol=1e-12)
    assert net.widths == (F, H, 1) and net.n_params == sum(int(np.prod(s)) for s in net.param_shapes)


def test_the_trainer_trains_the_net_on_variable_length_adding_sequences():
    data = make_dataset("adding", seed=0, n_train=256, n_test=64, min_length=4, max_length=8)
    net = RNNNet(RNNNetSpec(2, 16, 1, norm="layer"))
    opt = get_optimizer("adam", lr=1e-2)
    hist = train(net, data, [0, 1], optimizer=opt, epochs=40, batch_size=32, clip_norm=1.0)
    assert (hist.test_loss[:, -1] < 0.05).all()           # always answering 1 scores 1/6
    alone = train(net, data, [1], optimizer=opt, epochs=40, batch_size=32, clip_norm=1.0)
    np.testing.assert_array_equal(hist.loss[1], alone.loss[0])
    hist_bn = train(RNNNet(RNNNetSpec(2, 16, 1, norm="batch")), data, [0], optimizer=opt, epochs=2, batch_size=32)
    assert hist_bn.state[0]["running_mean_hh"].shape == (1, 8, 16)
    assert np.isfinite(hist_bn.test_loss).all()


def test_the_trainer_refuses_sequences_for_a_vector_net_and_back():
    from dlbench.nn.mlp import MLP, MLPSpec

    data = make_dataset("adding", seed=0, n_train=32, n_test=8)
    with pytest.raises(DlbenchError, match="data set 'adding' holds sequences but the net takes vectors"):
        train(MLP(MLPSpec((2, 4, 1))), data, [0])
    with pytest.raises(DlbenchError, match="holds vectors but the net takes sequences"):
        train(RNNNet(RNNNetSpec(1, 4, 1)), make_dataset("sine", n_train=32, n_test=8), [0])


def test_mse_on_the_net_is_the_mean_over_samples():
    net = RNNNet(RNNNetSpec(2, 4, 1))
    data = make_dataset("adding", seed=1, n_train=16, n_test=4)
    params = net.init([0])
    out, _ = net.forward(params, data.X_train, lengths=data.lengths_train)
    loss, _ = mse(out, data.y_train)
    assert loss.shape == (1,) and out.shape == (1, 16, 1)
