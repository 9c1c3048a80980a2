"""Minibatch training of S replicas of an MLP at once, with per-replica data order, divergence and early stop.

Replica s initialises from np.random.default_rng(seeds[s]) (MLP.init) and shuffles the training set each
epoch with its own generator, default_rng(SeedSequence(seeds[s], spawn_key=(1,))), and draws its dropout masks
from default_rng(SeedSequence(seeds[s], spawn_key=(2,))); batches are gathered as (S, B, d), so every replica
follows exactly the trajectory of a single-replica run with its seed, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.nn.losses import LossFn, get_loss
from dlbench.nn.mlp import MLP, MLPCache
from dlbench.nn.optim import Optimizer, clip_grad_norm_, clip_grad_value_, get_optimizer


class Dataset(Protocol):
    """What training needs of a data set (`dlbench.data.Dataset` is one): arrays, task and sizes. A sequence
    set has X (n, T, F) and per-sample valid steps in lengths_train / lengths_test (n,) attributes; its model
    takes `lengths=` in forward and says so with a true `takes_sequences` attribute."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: str

    @property
    def n_features(self) -> int: ...

    @property
    def n_outputs(self) -> int: ...


@dataclass
class History:
    """What a training run measured, per replica (axis 0 of every array is the replica).

    loss: (S, T) minibatch loss of each forward pass, before that step's update (T = steps, +1 when an early
    stop ends the run after a forward pass). eval_step: (E,) updates applied at each evaluation (0 = at init,
    then after every eval_every epochs and after each update count in eval_steps, and at the end). train_loss/test_loss/train_acc/test_acc: (S, E) on the
    whole training and test sets in eval mode; accuracy is NaN for regression. diverged: (S,) bool;
    diverged_step: (S,) the step whose loss was non-finite or above diverge_factor * initial loss (-1: never);
    from then on that replica's parameters stay frozen. steps_to_target: (S,) first step whose minibatch loss
    was <= target_loss (-1: never or no target). params/state: the trained parameters and norm state.
    """

    seeds: np.ndarray
    loss: np.ndarray
    eval_step: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    steps_to_target: np.ndarray
    steps: int
    steps_per_epoch: int
    stopped_early: bool
    params: list
    state: list


@dataclass
class StepInfo:
    """Passed to train's callback after each update: grads are those applied (after clipping)."""

    step: int
    epoch: int
    params: list
    grads: list
    cache: MLPCache
    loss: np.ndarray
    x: np.ndarray
    y: np.ndarray


def default_loss(data: Dataset) -> str:
    """softmax_ce for classification, mse for regression."""
    return "softmax_ce" if data.task == "classification" else "mse"


def _targets(data: Dataset, loss_name: str | None, y: np.ndarray, dtype) -> np.ndarray:
    # bce takes float targets with the output axis: binary labels become (n, 1)
    if loss_name == "bce" and y.ndim == 1:
        return y.astype(dtype)[:, None]
    if data.task == "regression":
        return y.astype(dtype, copy=False)
    return y


def evaluate(model: MLP, params: list, state, X: np.ndarray, y: np.ndarray, loss_fn: LossFn,
             classification: bool, lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(loss (S,), accuracy (S,)) of every replica on the whole set (X, y), in eval mode; accuracy NaN if not
    classification. One logit means a binary net (class 1 where the logit is > 0). lengths: a sequence set's."""
    with np.errstate(all="ignore"):
        out, _ = model.forward(params, X, state, train=False, **({} if lengths is None else {"lengths": lengths}))
        loss, _ = loss_fn(out, y)
        if not classification:
            return loss, np.full(loss.shape, np.nan)
        labels = y[..., 0] if y.ndim == out.ndim - 1 else y
        pred = out[..., 0] > 0 if out.shape[-1] == 1 else out.argmax(axis=-1)
        return loss, np.mean(pred == labels, axis=-1)


def train(
    model: MLP,
    data: Dataset,
    seeds: Sequence[int],
    *,
    optimizer: Optimizer | str = "sgd",
    loss: str | LossFn | None = None,
    epochs: int = 10,
    batch_size: int = 32,
    max_steps: int | None = None,
    params: list | None = None,
    state: list | None = None,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    target_loss: float | None = None,
    diverge_factor: float = 1e3,
    eval_every: int = 1,
    eval_steps: Sequence[int] = (),
    shuffle: bool = True,
    callback: Callable[[StepInfo], None] | None = None,
) -> History:
    """Train len(seeds) replicas of `model` on `data` with minibatch steps of `optimizer`; return a History.

    Each epoch is n_train // batch_size steps (a batch_size above n_train means full batch); the n_train %
    batch_size samples left over are a different random set each epoch. max_steps caps the updates. params
    (from model.init(seeds)) and state (model.init_state) are created when not given and updated in place.
    loss: a name from dlbench.nn.losses or a loss_fn; default softmax_ce for classification, mse for
    regression. clip_norm / clip_value clip each replica's gradients (torch semantics) before the step.
    target_loss: record each replica's first step at or below it; stop once every replica has reached it or
    diverged. A replica whose loss is non-finite or above diverge_factor times its first loss is frozen.
    The whole training and test sets are evaluated at init, every eval_every epochs (0: never), after each
    update count in eval_steps, and at the end.
    """
    seeds = np.atleast_1d(np.asarray(seeds, dtype=np.int64))
    S = len(seeds)
    if isinstance(optimizer, str):
        optimizer = get_optimizer(optimizer)
    loss_name = loss if isinstance(loss, str) else (default_loss(data) if loss is None else None)
    loss_fn = get_loss(loss_name) if loss_name is not None else loss
    if params is None:
        params = model.init(seeds)
    if state is None:
        state = model.init_state(S)
    if model.widths[0] != data.n_features:
        raise DlbenchError(f"the net takes {model.widths[0]} inputs but data set {data.name!r} "
                           f"has {data.n_features} features")
    if loss_name in ("mse", "softmax_ce") and model.widths[-1] != data.n_outputs:
        raise DlbenchError(f"the net has {model.widths[-1]} outputs but {loss_name} on data set {data.name!r} "
                           f"needs {data.n_outputs}")
    if params[0].shape[0] != S:
        raise DlbenchError(f"params hold {params[0].shape[0]} replicas but {S} seeds were given")
    lengths, lengths_test = getattr(data, "lengths_train", None), getattr(data, "lengths_test", None)
    holds = "sequences" if np.ndim(data.X_train) == 3 else "vectors"
    takes = "sequences" if getattr(model, "takes_sequences", False) else "vectors"
    if holds != takes:
        raise DlbenchError(f"data set {data.name!r} holds {holds} but the net takes {takes}")

    X = np.ascontiguousarray(data.X_train, dtype=model.dtype)
    y = _targets(data, loss_name, data.y_train, model.dtype)
    X_test = np.ascontiguousarray(data.X_test, dtype=model.dtype)
    y_test = _targets(data, loss_name, data.y_test, model.dtype)
    n = X.shape[0]
    B = min(batch_size, n)
    per_epoch = n // B
    total = epochs * per_epoch if max_steps is None else min(epochs * per_epoch, max_steps)
    classification = data.task == "classification"

    shufflers = [np.random.default_rng(np.random.SeedSequence(int(s), spawn_key=(1,))) for s in seeds]
    # dropout's masks: one more stream per replica, so a replica's run does not depend on the others
    droppers = ([np.random.default_rng(np.random.SeedSequence(int(s), spawn_key=(2,))) for s in seeds]
                if getattr(model, "dropout", 0) > 0 else None)
    xb = np.empty((S, B, *X.shape[1:]), dtype=X.dtype)
    yb = np.empty((S, B, *y.shape[1:]), dtype=y.dtype)
    lb = None if lengths is None else np.empty((S, B), dtype=np.int64)
    seq: dict = {}
    opt_state = optimizer.init(params)
    losses = np.full((S, total + 1), np.nan)
    diverged = np.zeros(S, dtype=bool)
    diverged_step = np.full(S, -1, dtype=np.int64)
    steps_to_target = np.full(S, -1, dtype=np.int64)
    frozen: list | None = None
    initial = None
    evals: list = []

    def record_eval(step: int) -> None:
        tr = evaluate(model, params, state, X, y, loss_fn, classification, lengths)
        te = evaluate(model, params, state, X_test, y_test, loss_fn, classification, lengths_test)
        evals.append((step, *tr, *te))

    eval_at = {int(k) for k in eval_steps if k > 0}
    record_eval(0)
    t, stopped = 0, False
    with np.errstate(all="ignore"):  # divergence is detected from the loss, not reported as warnings
        for epoch in range(epochs):
            if t >= total or stopped:
                break
            order = (np.stack([r.permutation(n) for r in shufflers]) if shuffle
                     else np.broadcast_to(np.arange(n), (S, n)))
            for j in range(per_epoch):
                if t >= total:
                    break
                idx = order[:, j * B:(j + 1) * B]
                np.take(X, idx, axis=0, out=xb)
                np.take(y, idx, axis=0, out=yb)
                if lb is not None:
                    seq = {"lengths": np.take(lengths, idx, out=lb)}
                if droppers is not None:
                    seq["rng"] = droppers
                out, cache = model.forward(params, xb, state, train=True, reuse=True, **seq)
                step_loss, g_out = loss_fn(out, yb)
                losses[:, t] = step_loss
                if initial is None:
                    initial = step_loss.copy()
                bad = ~np.isfinite(step_loss) | (step_loss > diverge_factor * initial)
                new = bad & ~diverged
                if new.any():
                    diverged |= new
                    diverged_step[new] = t
                    frozen = [p[diverged].copy() for p in params]
                if target_loss is not None:
                    hit = (step_loss <= target_loss) & (steps_to_target < 0) & ~diverged
                    steps_to_target[hit] = t
                    stopped = bool(np.all(diverged | (steps_to_target >= 0)))
                stopped = stopped or bool(diverged.all())
                if stopped:
                    break
                grads = model.backward(params, cache, g_out, reuse=True)
                if frozen is not None:
                    for g in grads:
                        g[diverged] = 0
                if clip_norm is not None:
                    clip_grad_norm_(grads, clip_norm, run_axes=(0,))
                if clip_value is not None:
                    clip_grad_value_(grads, clip_value)
                opt_state = optimizer.step(params, grads, opt_state)
                if frozen is not None:
                    for p, f in zip(params, frozen):
                        p[diverged] = f
                t += 1
                if t in eval_at:
                    record_eval(t)
                if callback is not None:
                    callback(StepInfo(t - 1, epoch, params, grads, cache, step_loss, xb, yb))
            else:  # the epoch ran to its end
                if eval_every and (epoch + 1) % eval_every == 0 and evals[-1][0] != t:
                    record_eval(t)
    if evals[-1][0] != t:
        record_eval(t)
    columns = list(zip(*evals))
    steps_run = t + 1 if stopped else t
    return History(
        seeds=seeds, loss=losses[:, :steps_run], eval_step=np.array(columns[0]),
        train_loss=np.stack(columns[1], 1), train_acc=np.stack(columns[2], 1),
        test_loss=np.stack(columns[3], 1), test_acc=np.stack(columns[4], 1),
        diverged=diverged, diverged_step=diverged_step, steps_to_target=steps_to_target,
        steps=t, steps_per_epoch=per_epoch, stopped_early=stopped, params=params, state=state,
    )
