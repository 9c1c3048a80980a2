"""The trainer: replicas are independent runs bit for bit, seeded, divergence is recorded, early stop, history."""

import warnings

import numpy as np
import pytest

from dlbench.data import make_dataset
from dlbench.experiments.teacher import relu_teacher
from dlbench.errors import DlbenchError
from dlbench.nn.mlp import MLP, MLPSpec
from dlbench.nn.optim import get_optimizer
from dlbench.nn.train import train

SPIRALS = make_dataset("spirals", seed=0, n_train=96, n_test=64)
TEACHER = make_dataset("teacher", seed=0, n_train=96, n_test=64, dim=3, net=relu_teacher(3))
BLOBS = make_dataset("blobs", seed=0, n_train=128, n_test=64)

CONFIGS = {
    "relu-adam-clipnorm": (SPIRALS, MLPSpec((2, 16, 16, 2)), "adam", {"lr": 1e-2}, {"clip_norm": 0.5}),
    "prelu-batchnorm-momentum-clipvalue": (
        TEACHER, MLPSpec((3, 12, 12, 1), activation=("tanh", "prelu"), norm="batch"),
        "momentum", {"lr": 1e-2}, {"clip_value": 0.1}),
    "maxout-layernorm-rmsprop": (
        SPIRALS, MLPSpec((2, 8, 2), activation="maxout", activation_hyper={"pieces": 3}, norm="layer"),
        "rmsprop", {"lr": 1e-3}, {}),
}
PER_REPLICA = ["loss", "train_loss", "test_loss", "train_acc", "test_acc", "diverged", "diverged_step",
               "steps_to_target"]


@pytest.mark.parametrize("config", CONFIGS)
def test_replicas_together_equal_separate_runs_bit_for_bit(config):
    data, spec, opt, hyper, kw = CONFIGS[config]
    net = MLP(spec)
    seeds = [3, 1, 4]
    together = train(net, data, seeds, optimizer=get_optimizer(opt, **hyper), epochs=2, batch_size=16, **kw)
    assert together.loss.shape == (3, 2 * 6)
    for s, seed in enumerate(seeds):
        alone = train(net, data, [seed], optimizer=get_optimizer(opt, **hyper), epochs=2, batch_size=16, **kw)
        np.testing.assert_array_equal(together.eval_step, alone.eval_step)
        for name in PER_REPLICA:
            np.testing.assert_array_equal(getattr(together, name)[s], getattr(alone, name)[0], err_msg=name)
        for p, q in zip(together.params, alone.params):
            np.testing.assert_array_equal(p[s], q[0])
        for st, sq in zip(together.state, alone.state):
            for key in st:
                if st[key].ndim and st[key].shape[0] == 3:
                    np.testing.assert_array_equal(st[key][s], sq[key][0])
    # different seeds are different runs
    assert not np.array_equal(together.loss[0], together.loss[1])


def test_same_seed_gives_identical_runs():
    net = MLP(MLPSpec((2, 16, 2), activation="tanh"))
    a = train(net, SPIRALS, [7, 8], optimizer=get_optimizer("sgd", lr=0.1), epochs=2, batch_size=8)
    b = train(net, SPIRALS, [7, 8], optimizer=get_optimizer("sgd", lr=0.1), epochs=2, batch_size=8)
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.test_loss, b.test_loss)
    c = train(net, SPIRALS, [7, 8], optimizer=get_optimizer("sgd", lr=0.1), epochs=2, batch_size=8, shuffle=False)
    assert not np.array_equal(a.loss, c.loss)


def test_divergence_is_recorded_frozen_and_silent():
    net = MLP(MLPSpec((3, 16, 1)))
    lr = np.array([1e-2, 1e5]).reshape(2, 1, 1)  # one learning rate per replica
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = train(net, TEACHER, [0, 1], optimizer=get_optimizer("sgd", lr=lr), epochs=3, batch_size=16,
                  callback=lambda info: seen.append([p[1].copy() for p in info.params]))
    assert h.diverged.tolist() == [False, True]
    k = h.diverged_step[1]
    assert h.diverged_step[0] == -1 and 0 < k < h.steps
    assert not np.isfinite(h.loss[1, k]) or h.loss[1, k] > 1e3 * h.loss[1, 0]
    for later in seen[k:]:  # the diverged replica's parameters no longer move
        for p, q in zip(later, seen[k]):
            np.testing.assert_array_equal(p, q)
    # the healthy replica is unaffected by its diverging neighbour
    alone = train(net, TEACHER, [0], optimizer=get_optimizer("sgd", lr=lr[:1]), epochs=3, batch_size=16)
    np.testing.assert_array_equal(h.loss[0], alone.loss[0])
    assert not alone.diverged.any()


def test_all_replicas_diverged_stops_the_run():
    net = MLP(MLPSpec((3, 16, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = train(net, TEACHER, [0, 1], optimizer=get_optimizer("sgd", lr=1e6), epochs=50, batch_size=16)
    assert h.diverged.all() and h.stopped_early and h.steps < 50 * 6


def test_early_stop_on_target_loss():
    net = MLP(MLPSpec((2, 16, 3)))
    target = 0.2
    h = train(net, BLOBS, [0, 1, 2], optimizer=get_optimizer("adam", lr=0.05), epochs=50, batch_size=16,
              target_loss=target)
    assert h.stopped_early and h.steps < 50 * 8 and h.loss.shape == (3, h.steps + 1)
    assert (h.steps_to_target >= 0).all() and h.steps_to_target.max() == h.steps
    for s, k in enumerate(h.steps_to_target):
        assert h.loss[s, k] <= target and (h.loss[s, :k] > target).all()
    assert h.eval_step[-1] == h.steps


def test_history_layout_and_learning():
    net = MLP(MLPSpec((2, 16, 3)))
    h = train(net, BLOBS, [0, 1], optimizer=get_optimizer("adam", lr=0.02), epochs=4, batch_size=32)
    assert h.steps_per_epoch == 4 and h.steps == 16 and not h.stopped_early
    assert h.eval_step.tolist() == [0, 4, 8, 12, 16]
    for name in ["train_loss", "test_loss", "train_acc", "test_acc"]:
        assert getattr(h, name).shape == (2, 5)
    assert (h.test_acc[:, -1] > 0.9).all() and (h.train_loss[:, -1] < h.train_loss[:, 0]).all()
    assert h.diverged_step.tolist() == [-1, -1] and h.steps_to_target.tolist() == [-1, -1]
    capped = train(net, BLOBS, [0], optimizer="sgd", epochs=4, batch_size=32, max_steps=6, eval_every=2)
    assert capped.steps == 6 and capped.eval_step.tolist() == [0, 6]
    reg = train(MLP(MLPSpec((3, 8, 1))), TEACHER, [0], optimizer="sgd", epochs=1, batch_size=200)
    assert reg.steps_per_epoch == 1 and np.isnan(reg.test_acc).all()


def test_binary_net_with_bce_and_callback():
    net = MLP(MLPSpec((2, 16, 1)))
    steps = []
    h = train(net, SPIRALS, [0, 1], optimizer=get_optimizer("adam", lr=1e-2), loss="bce", epochs=2,
              batch_size=32, callback=lambda info: steps.append((info.step, info.x.shape, info.y.shape)))
    assert steps == [(t, (2, 32, 2), (2, 32, 1)) for t in range(6)]
    assert ((h.test_acc >= 0) & (h.test_acc <= 1)).all()


def test_clip_norm_bounds_each_replicas_step():
    net = MLP(MLPSpec((2, 16, 2)))
    start = net.init([0, 1])
    h = train(net, SPIRALS, [0, 1], params=[p.copy() for p in start], optimizer=get_optimizer("sgd", lr=1.0),
              epochs=1, max_steps=1, clip_norm=1e-3)
    moved = np.sqrt(sum(((p - q) ** 2).reshape(2, -1).sum(1) for p, q in zip(h.params, start)))
    assert (moved <= 1e-3 * 1.0001).all() and (moved > 0.9e-3).all()


def test_mismatched_net_and_data():
    with pytest.raises(DlbenchError, match="takes 3 inputs"):
        train(MLP(MLPSpec((3, 4, 2))), SPIRALS, [0])
    with pytest.raises(DlbenchError, match="needs 2"):
        train(MLP(MLPSpec((2, 4, 3))), SPIRALS, [0])
    with pytest.raises(DlbenchError, match="2 replicas but 1 seeds"):
        net = MLP(MLPSpec((2, 4, 2)))
        train(net, SPIRALS, [0], params=net.init([0, 1]))
