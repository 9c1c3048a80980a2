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

import math

import numpy as np

REFINEMENT_ELEMENTS = 2**21      # pieces x units per array of one chunk's refinement in `squared_error`


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


def _layers(params: list[np.ndarray], lo: float, hi: float):
    """Each hidden layer's pre-activations on the common refinement of every replica's pieces on [lo, hi].

    Yields (edges (n+1,), zA (S, n, width), zC (S, n, width)) per hidden layer, where unit j's pre-activation
    on piece i is zA x + zC. Layer by layer, each unit's zero crossing x = -c / a, where strictly inside a
    piece, splits it; relu then keeps (a, c) on the sub-pieces where z > 0 (tested at the midpoint) and
    zeroes them elsewhere. The last value sent back (generator.send is not used) is the output layer's
    (A, C) of the layer input: see `_output_slopes`.
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
        yield edges, zA, zC
        mids = 0.5 * (edges[:-1] + edges[1:])
        active = (zA * mids[None, :, None] + zC) > 0
        A, C = zA * active, zC * active
    yield edges, A, C


def _output_slopes(params: list[np.ndarray], lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Common refinement of every replica's linear pieces on [lo, hi] and the output slope on each piece.

    Returns (edges (n+1,), slopes (S, n, d_out)); see `_layers` for how the pieces are found.
    """
    *_, (edges, A, _) = _layers(params, lo, hi)
    return edges, A @ np.asarray(params[-2], dtype=np.float64)


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


def dead_layer(params: list[np.ndarray], lo: float = 0.0, hi: float = 1.0, *, start=None, end=None) -> np.ndarray:
    """Per replica: does some hidden layer output zero for every input on [lo, hi]? bool (S,).

    Such a net is constant in x and stays so under gradient training: the dead layer's units get no gradient
    (relu' = 0 wherever they are), nothing below them gets a gradient through them, so their inputs and
    weights never change (Lu et al. 2019 call it born dead). A unit is alive if its pre-activation, affine on
    each piece of the refinement, is positive at either end of some piece.
    """
    if start is not None or end is not None:
        params = _line_params([np.asarray(q, dtype=np.float64) for q in params], start, end)
    S = np.asarray(params[0]).shape[0]
    dead = np.zeros(S, dtype=bool)
    layers = _layers(params, lo, hi)
    for _ in range(len(params) // 2 - 1):
        edges, zA, zC = next(layers)
        at_left = zA * edges[None, :-1, None] + zC
        at_right = zA * edges[None, 1:, None] + zC
        alive = ((at_left > 0) | (at_right > 0)).any(axis=(1, 2))
        dead |= ~alive
    return dead


def squared_error(params: list[np.ndarray], target, kinks, *, start, end, chunk: int | None = None) -> np.ndarray:
    """Exact integral over x in [0, 1] of (net(start + x (end - start)) - target(x))^2, per replica (S,).

    target: a function of x in [0, 1] that is linear between the sorted points `kinks` (inside (0, 1)).
    Between consecutive points of the union of the net's breakpoints and the target's kinks both sides are
    linear, so the difference d is linear and its square integrates exactly: (b - a)(d_a^2 + d_a d_b + d_b^2)/3.
    Replicas are taken `chunk` at a time: their common refinement has about chunk x width pieces, each with
    a width of units, so the default chunk keeps chunk^2 width^2 near REFINEMENT_ELEMENTS. Float64 throughout.
    """
    p = [np.asarray(q, dtype=np.float64) for q in params]
    S = p[0].shape[0]
    if chunk is None:
        width = max(q.shape[-1] for q in p[:-2:2])
        chunk = int(max(1, min(16, math.isqrt(REFINEMENT_ELEMENTS) // width)))
    kinks = np.asarray(kinks, dtype=np.float64).ravel()
    out = np.empty(S)
    for s0 in range(0, S, chunk):
        part = [q[s0:s0 + chunk] for q in p]
        line = _line_params(part, start, end)
        edges, _ = _output_slopes(line, 0.0, 1.0)
        x = np.unique(np.concatenate([edges, kinks, [0.0, 1.0]]))
        f = relu_forward(line, x[:, None])[..., 0]                          # (chunk, n)
        d = f - np.asarray(target(x), dtype=np.float64).ravel()[None, :]
        a, b = d[:, :-1], d[:, 1:]
        out[s0:s0 + chunk] = (np.diff(x)[None, :] * (a * a + a * b + b * b)).sum(axis=1) / 3.0
    return out


def shallow_tent_net(k: int, width: int, *, scale: float = 1.0, shift: float = 0.0, out_scale: float = 1.0,
                     out_shift: float = 0.0, dtype=np.float64) -> list[np.ndarray]:
    """One hidden layer of `width` relu units equal to the tent map composed k times (one replica).

    For input u the net computes out_scale * t^k(x) + out_shift with x = scale * u + shift, as
    t^k(x) = 2^k relu(x) + sum_{j=1}^{2^k - 1} (-1)^j 2^(k+1) relu(x - j / 2^k) on [0, 1]: one unit per kink
    and one for the first slope, 2^k units; units beyond them get zero weights. Needs width >= 2^k.
    """
    n = 2**k
    if width < n:
        raise ValueError(f"a one-hidden-layer net needs {n} units for the tent map composed {k} times")
    kinks = np.arange(n) / n
    W0 = np.zeros((1, width))
    b0 = np.zeros((1, width))
    W1 = np.zeros((width, 1))
    W0[0, :n] = scale
    b0[0, :n] = shift - kinks
    W1[0, 0] = n
    W1[1:n, 0] = np.where(np.arange(1, n) % 2 == 1, -2.0 * n, 2.0 * n)
    W1 *= out_scale
    return [np.asarray(q, dtype=dtype)[None] for q in (W0, b0, W1, np.full((1, 1), out_shift))]
