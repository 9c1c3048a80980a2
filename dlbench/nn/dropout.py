"""Dropout (Srivastava et al. 2014, JMLR 15:1929) with the semantics of torch.nn.Dropout(p).

Training: every element is kept with probability 1 - p and scaled by 1 / (1 - p) ("inverted" dropout, so
the expected output equals the input and evaluation needs no rescaling):

    y = x * m,   m = k / (1 - p),   k ~ Bernoulli(1 - p) iid per element;   dx = g * m.

Evaluation: y = x (the identity; the same array, no copy). p = 0 is the identity in both modes; p = 1 drops
everything (y = 0, dx = 0), as torch does. Masks are drawn from a numpy Generator, or with a replica axis
from one Generator per replica (replica s's mask from rngs[s] alone), so S replicas of a net reproduce S
single-replica runs. Input (..., N, F); the mask has the input's shape and dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dlbench.errors import DlbenchError


def check_p(p) -> float:
    """p as a float in [0, 1]; anything else is a DlbenchError (torch raises ValueError)."""
    try:
        q = float(p)
    except (TypeError, ValueError):
        raise DlbenchError(f"dropout probability must be a number in [0, 1], got {p!r}") from None
    if not 0.0 <= q <= 1.0:
        raise DlbenchError(f"dropout probability must be in [0, 1], got {p!r}")
    return q


def dropout_mask(rng: np.random.Generator | Sequence[np.random.Generator], shape: tuple, p: float,
                 dtype=np.float32, out: np.ndarray | None = None) -> np.ndarray:
    """The scaled mask m of `shape`: 0 with probability p, 1 / (1 - p) otherwise.

    rng: one Generator for the whole mask, or a sequence of len(rng) == shape[0] Generators, replica s's
    slice drawn from rng[s] only.
    """
    p = check_p(p)
    dtype = np.dtype(dtype)
    m = np.empty(shape, dtype=dtype) if out is None else out
    if isinstance(rng, np.random.Generator):
        u = rng.random(shape, dtype=np.float64 if dtype == np.float64 else np.float32)
        _scaled_keep(u, p, m)
        return m
    rngs = list(rng)
    if not shape or len(rngs) != shape[0]:
        raise DlbenchError(f"dropout: {len(rngs)} generators for a mask of shape {shape} (one per replica)")
    for s, r in enumerate(rngs):
        u = r.random(shape[1:], dtype=np.float64 if dtype == np.float64 else np.float32)
        _scaled_keep(u, p, m[s])
    return m


def _scaled_keep(u: np.ndarray, p: float, out: np.ndarray) -> None:
    """out = (u >= p) / (1 - p): kept with probability 1 - p for u ~ U[0, 1)."""
    if p >= 1.0:
        out[...] = 0
        return
    np.greater_equal(u, p, out=out, casting="unsafe")
    out *= out.dtype.type(1.0 / (1.0 - p))


def dropout_forward(x: np.ndarray, p: float, *, train: bool = True, rng=None, mask: np.ndarray | None = None,
                    out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(y, mask): y = x * mask in training (mask drawn from rng unless given), y = x and mask None in eval
    or with p = 0."""
    p = check_p(p)
    x = np.asarray(x)
    if not train or p == 0.0:
        return x, None
    if mask is None:
        if rng is None:
            raise DlbenchError("dropout in training needs a random generator (rng) or a mask")
        mask = dropout_mask(rng, x.shape, p, x.dtype)
    elif mask.shape != x.shape:
        raise DlbenchError(f"dropout: mask of shape {mask.shape} for an input of shape {x.shape}")
    return np.multiply(x, mask, out=out), mask


def dropout_backward(g: np.ndarray, mask: np.ndarray | None, *, out: np.ndarray | None = None) -> np.ndarray:
    """dx = g * mask (the forward's scaled mask); g itself where no mask was drawn (eval, p = 0)."""
    if mask is None:
        if out is not None:
            np.copyto(out, g)
            return out
        return g
    return np.multiply(g, mask, out=out)
