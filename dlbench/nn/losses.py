"""Losses on a net's raw outputs: value per replica and gradient w.r.t. the outputs.

Every loss is `loss_fn(out, y) -> (loss, dout)`: `out` is (..., N, C) with any leading replica axes, `loss` has
shape out.shape[:-2] (one mean loss per replica) and `dout = dL/dout` has out's shape. Targets without the
leading axes are shared by all replicas (broadcast). Values follow torch.nn.functional with reduction="mean".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dlbench.registry import Registry

LossFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
LOSSES: Registry[LossFn] = Registry("loss")


@LOSSES.register("mse")
def mse(out: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean squared error, as torch's mse_loss: L = mean over samples and outputs of (out - y)^2.

    y broadcasts against out (..., N, D). dL/dout = 2 (out - y) / (N D).
    """
    diff = np.subtract(out, y, dtype=out.dtype)
    loss = np.mean(diff * diff, axis=(-2, -1))
    np.multiply(diff, 2.0 / (out.shape[-2] * out.shape[-1]), out=diff)
    return loss, diff


@LOSSES.register("bce")
def bce(out: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binary cross-entropy on logits z, as torch's binary_cross_entropy_with_logits (targets y in [0, 1]).

    l = max(z, 0) - z y + log(1 + exp(-|z|))   (never exponentiates a positive number, so no overflow);
    L = mean over samples and outputs; dL/dz = (sigmoid(z) - y) / (N D), sigmoid(z) = (1 + tanh(z/2)) / 2.
    y broadcasts against out (..., N, D): pass binary labels as (N, 1) floats for a one-logit net.
    """
    z = out
    per = np.abs(z)
    np.negative(per, out=per)
    np.exp(per, out=per)
    np.log1p(per, out=per)
    per += np.maximum(z, 0)
    per -= z * y
    loss = np.mean(per, axis=(-2, -1))
    dout = np.multiply(z, 0.5)
    np.tanh(dout, out=dout)
    dout *= 0.5
    dout += 0.5
    dout -= y
    dout *= 1.0 / (z.shape[-2] * z.shape[-1])
    return loss, dout


@LOSSES.register("softmax_ce")
def softmax_ce(out: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax cross-entropy on logits z (..., N, C) with integer labels y, as torch's cross_entropy.

    l_n = logsumexp(z_n) - z_n[y_n], computed after subtracting max_c z_n (no overflow); L = mean over n.
    dL/dz = (softmax(z) - onehot(y)) / N. y has shape out.shape[:-1] or broadcasts to it ((N,) is shared).
    """
    z = out
    labels = np.broadcast_to(y, z.shape[:-1])[..., None]
    shifted = z - z.max(axis=-1, keepdims=True)
    p = np.exp(shifted)
    total = p.sum(axis=-1, keepdims=True)
    per = np.log(total)
    per -= np.take_along_axis(shifted, labels, axis=-1)
    loss = np.mean(per[..., 0], axis=-1)
    p /= total
    np.put_along_axis(p, labels, np.take_along_axis(p, labels, axis=-1) - 1, axis=-1)
    p *= 1.0 / z.shape[-2]
    return loss, p


def get_loss(name: str) -> LossFn:
    """The loss registered under `name` (mse, bce, softmax_ce); unknown names raise UnknownName."""
    return LOSSES[name]
