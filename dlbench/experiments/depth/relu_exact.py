"""Exact constructions and analyses of small relu nets, for `dlbench depth`.

Nets are flat parameter lists in the MLP layout, replica axis first: [W0, b0, W1, b1, ...] with
W_l (S, fan_in, fan_out) and b_l (S, 1, fan_out); hidden layers use relu, the last layer is linear.

- `tent_net(k)`: Telgarsky's width-2, depth-k relu net computing the tent map composed k times on [0, 1]
  (2^k linear pieces, zero error; Telgarsky, "Benefits of depth in neural networks", COLT 2016).
- `breakpoints` / `count_pieces`: the points where a relu net of a 1-D input changes slope, located
  analytically layer by layer (each unit's zero crossing on each linear piece), not by sampling.
- `collapse_linear`: a net with the identity activation as one affine map (W_1 ... W_L, folded biases).
"""

from __future__ import annotations

import numpy as np


def tent_net(k: int, dtype=np.float64) -> list[np.ndarray]:
    """Parameters (one replica) of the width-2, depth-k relu net equal to the tent map t composed k times.

    On [0, 1], t(x) = 2 relu(x) - 4 relu(x - 1/2): layer 1 computes (relu(x), relu(x - 1/2)); every later
    hidden layer reads t of the layer below from those two units, t = 2 h1 - 4 h2, and computes
    (relu(t), relu(t - 1/2)); the output layer returns 2 h1 - 4 h2. Since t maps [0, 1] onto [0, 1], relu(t) = t.
    6k + 1 parameters; 2^k linear pieces with slopes +-2^k; exact in floating point (dyadic weights).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    read = np.array([[2.0, 2.0], [-4.0, -4.0]])  # t = 2 h1 - 4 h2, copied to both units
    bias = np.array([[0.0, -0.5]])
    params = [np.array([[1.0, 1.0]]), bias]
    for _ in range(k - 1):
        params += [read, bias]
    params += [np.array([[2.0], [-4.0]]), np.zeros((1, 1))]
    return [np.asarray(p, dtype=dtype)[None] for p in params]


def relu_forward(params: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Outputs (S, N, d_out) of a relu net for inputs x (N, d_in): h <- relu(h W + b), linear last layer."""
    h = np.asarray(x)
    n_layers = len(params) // 2
    for l in range(n_layers):
        h = h @ params[2 * l] + params[2 * l + 1]
        if l < n_layers - 1:
            h = np.maximum(h, 0)
    return h


def _line_params(params: list[np.ndarray], start, end) -> list[np.ndarray]:
    """The net restricted to the segment x(t) = start + t (end - start), t in [0, 1], as a 1-input net."""
    start = np.asarray(start, dtype=np.float64).reshape(1, -1)
    end = np.asarray(end, dtype=np.float64).reshape(1, -1)
    W0, b0 = params[0], params[1]
    return [(end - start) @ W0, start @ W0 + b0, *params[2:]]


def _output_slopes(params: list[np.ndarray], lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Common refinement of every replica's linear pieces on [lo, hi] and the output slope on each piece.

    Returns (edges (n+1,), slopes (S, n, d_out)). Layer by layer, each hidden unit's pre-activation is affine
    on every current piece, z = a x + c; its zero crossing x = -c / a, where strictly inside a piece, splits
    it; relu then keeps (a, c) on the sub-pieces where z > 0 (tested at the midpoint) and zeroes them elsewhere.
    """
    p = [np.asarray(q, dtype=np.float64) for q in params]
    S = p[0].shape[0]
    if p[0].shape[1] != 1:
        raise ValueError("count pieces of a 1-D input: pass start/end for a net with more inputs")
    span = hi - lo
    eps = 1e-12 * max(span, 1.0)
    edges = np.array([lo, hi], dtype=np.float64)
    A = np.ones((S, 1, 1))   # slope of the layer input on each piece, (S, n, width)
    C = np.zeros((S, 1, 1))  # intercept
    n_layers = len(p) // 2
    for l in range(n_layers - 1):
        zA = A @ p[2 * l]
        zC = C @ p[2 * l] + p[2 * l + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = -zC / zA
        left, right = edges[:-1, None], edges[1:, None]
        inside = (zA != 0) & (cross > left + eps) & (cross < right - eps)
        if inside.any():
            new = np.unique(np.concatenate([edges, cross[inside]]))
            keep = np.r_[True, np.diff(new) > eps]  # crossings closer than eps are one breakpoint
            new = new[keep]
            new[-1] = hi
            mids = 0.5 * (new[:-1] + new[1:])
            parent = np.clip(np.searchsorted(edges, mids, side="right") - 1, 0, edges.size - 2)
            zA, zC, edges = zA[:, parent], zC[:, parent], new
        mids = 0.5 * (edges[:-1] + edges[1:])
        active = (zA * mids[None, :, None] + zC) > 0
        A, C = zA * active, zC * active
    return edges, A @ p[-2]


def _slope_changes(params, lo, hi, start, end, rtol) -> tuple[np.ndarray, np.ndarray]:
    """(inner edges (n-1,), real (S, n-1) bool): which edges of the common refinement are breakpoints."""
    if start is not None or end is not None:
        params = _line_params([np.asarray(q, dtype=np.float64) for q in params], start, end)
    edges, slopes = _output_slopes(params, lo, hi)
    jump = np.abs(np.diff(slopes, axis=1)).max(axis=-1, initial=0.0)   # (S, n-1)
    scale = np.abs(slopes).max(axis=(1, 2))                             # (S,)
    real = jump > rtol * np.maximum(scale, np.finfo(np.float64).tiny)[:, None]
    return edges[1:-1], real


def breakpoints(params: list[np.ndarray], lo: float = 0.0, hi: float = 1.0, *, start=None, end=None,
                rtol: float = 1e-9) -> list[np.ndarray]:
    """Per replica, the sorted points in (lo, hi) where the net's output changes slope.

    A 1-input net is read on [lo, hi]; with start/end (points of the input space) the net is read along the
    segment start + t (end - start), t in [lo, hi]. A slope change smaller than rtol times the replica's
    largest output slope is rounding, not a breakpoint. A vector output breaks where any component does.
    """
    inner, real = _slope_changes(params, lo, hi, start, end, rtol)
    return [inner[r] for r in real]


def count_pieces(params: list[np.ndarray], lo: float = 0.0, hi: float = 1.0, *, start=None, end=None,
                 rtol: float = 1e-9) -> np.ndarray:
    """Number of linear pieces (breakpoints + 1) of each replica's output on [lo, hi]; int array (S,)."""
    return _slope_changes(params, lo, hi, start, end, rtol)[1].sum(axis=1) + 1


def collapse_linear(params: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) of the single affine map x W + b equal to a net with the identity activation.

    W = W_0 W_1 ... W_{L-1};  b = (((b_0 W_1 + b_1) W_2 + b_2) ...) W_{L-1} + b_{L-1}.
    """
    W, b = params[0], params[1]
    for l in range(1, len(params) // 2):
        W = W @ params[2 * l]
        b = b @ params[2 * l] + params[2 * l + 1]
    return W, b
