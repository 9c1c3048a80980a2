"""The activations experiment's timing parts: forward+backward cost against relu (A2's cost cells, A9) and a
dense layer with one activation per layer or per unit (A1).

Every comparison is timed interleaved (`RunContext.time_interleaved`: sample j of every call before sample
j + 1 of any) and judged on the per-sample ratios, so a change of the machine's load falls on both sides.
Kernels come from an implementation (`KERNELS`): dlbench's own today; a peer (torch) is one more entry and
one more value of the claims' `implementation` axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dlbench.experiments.activations import notes
from dlbench.experiments.base import RunContext
from dlbench.stats import finding

LANES = 128                  # columns of every timed array (rows = size / 128)
A1_BATCH = 512
A1_NULL = 1.05               # A1: per-unit at least 5 % dearer
AA_NULL = 1.05               # A1's control is held to the same
COST_SECTION = "costs.timings"


# ----------------------------------------------------------------------------- kernels of an implementation

class DlbenchKernels:
    """Zero-argument calls over preallocated float32 buffers, built from dlbench.nn's kernels.

    An implementation provides `__init__(n, rng)` (buffers for n elements), `activation(name)` and
    `layer(name)` (forward+backward calls) and `dense_layers(width, acts, mixes, rng)` (A1's forward calls).
    """

    name = "dlbench"

    def __init__(self, n: int, rng: np.random.Generator):
        rows = max(1, n // LANES)
        self.n = rows * LANES
        self.x = rng.standard_normal((rows, LANES), dtype=np.float32)
        self.g = rng.standard_normal((rows, LANES), dtype=np.float32)
        self.y = np.empty_like(self.x)
        self.dx = np.empty_like(self.x)
        self.rng = rng
        self._wide: dict = {}

    def activation(self, name: str) -> Callable[[], None]:
        """Forward then backward of an elementwise activation over n elements (y and dx written in place)."""
        from dlbench.nn.activations import ACTIVATIONS

        act = ACTIVATIONS[name]
        if act.pieces != 1:
            raise ValueError(f"{name} is not elementwise: time it as a layer")
        theta = tuple(act.init_params((), 1, np.float32)) if act.init_params else ()
        x, y, g, dx = self.x, self.y, self.g, self.dx

        def both():
            act.forward(x, *theta, out=y)
            act.backward(x, y, g, *theta, out=dx)

        return both

    def layer(self, name: str) -> Callable[[], None]:
        """A dense layer's forward and backward whose activation output has n elements: z = h W (h of 128
        features), y = f(z), then dz, dW = h^T dz and dh = dz W^T; maxout's W has k x 128 columns."""
        from dlbench.nn.activations import ACTIVATIONS

        act = ACTIVATIONS[name]
        k = act.pieces
        h, y, g = self.x, self.y, self.g
        W = (self.rng.standard_normal((LANES, LANES * k), dtype=np.float32) / np.float32(math.sqrt(LANES)))
        z, dz = self._buffers(k)
        dW, dh = np.empty_like(W), np.empty_like(h)

        def both():
            np.matmul(h, W, out=z)
            act.forward(z, out=y)
            act.backward(z, y, g, out=dz)
            np.matmul(h.T, dz, out=dW)
            np.matmul(dz, W.T, out=dh)

        return both

    @staticmethod
    def dense_layers(width: int, acts: list[str], mixes: list[str], rng: np.random.Generator) -> dict:
        """Zero-argument forward calls of one dense layer: 'all <name>' for each activation (and a second relu
        for the A/A control), 'mixed <mix>' with each unit one of the mix's activations, grouped into blocks."""
        from dlbench.nn.activations import ACTIVATIONS

        xt = rng.standard_normal((width, A1_BATCH), dtype=np.float32)        # unit-major: features x batch
        Wt = (rng.standard_normal((width, width)) / math.sqrt(width)).astype(np.float32)
        bt = np.zeros((width, 1), np.float32)
        zt, out = np.empty((width, A1_BATCH), np.float32), np.empty((width, A1_BATCH), np.float32)

        def one(act):
            def forward():
                np.matmul(Wt, xt, out=zt)
                np.add(zt, bt, out=zt)
                act.forward(zt, out=out)
            return forward

        def mixed(blocks):
            def forward():
                np.matmul(Wt, xt, out=zt)
                np.add(zt, bt, out=zt)
                for act, a, b in blocks:
                    act.forward(zt[a:b], out=out[a:b])
            return forward

        layers = {"all relu": one(ACTIVATIONS["relu"]), "all relu (A/A)": one(ACTIVATIONS["relu"])}
        layers.update({f"all {a}": one(ACTIVATIONS[a]) for a in acts if a != "relu"})
        for mix in mixes:
            names = mix.split(",")
            counts = np.bincount(rng.permutation(np.arange(width) % len(names)), minlength=len(names))
            edges = np.concatenate([[0], np.cumsum(counts)])
            layers[f"mixed {mix}"] = mixed([(ACTIVATIONS[a], int(lo), int(hi)) for a, lo, hi in
                                            zip(names, edges[:-1], edges[1:]) if hi > lo])
        return layers

    def _buffers(self, k: int):
        if k not in self._wide:
            self._wide[k] = (np.empty((self.x.shape[0], LANES * k), np.float32),
                             np.empty((self.x.shape[0], LANES * k), np.float32))
        return self._wide[k]


KERNELS = {"dlbench": DlbenchKernels}


def kernel_bytes(n: int) -> int:
    """Bytes of the cost kernels' buffers at size n (x, y, g, dx, and each layer's z, dz, dh; maxout's 2x)."""
    return 4 * n * 14


# ----------------------------------------------------------------------------- A2's cost cells and A9

def kernel_costs(opts, ctx: RunContext, size: str = "in_cache") -> None:
    """Forward+backward of every selected activation, relu's twice (the A/A control), and the relu and
    maxout layers, interleaved at one of the two sizes ('in_cache' or 'from_dram'); A2's cost cells and A9
    at that size from the ratios."""
    from dlbench.experiments.activations import CLAIMS, COSTLY_FACTOR, IMPLEMENTATIONS, activation_names, sizes
    from dlbench.nn.activations import ACTIVATIONS

    names = activation_names(opts.activations)
    elementwise = [n for n in dict.fromkeys(["relu", *names]) if ACTIVATIONS[n].pieces == 1]
    layered = [n for n in names if ACTIVATIONS[n].pieces > 1]
    where = {size: dict(zip(("in_cache", "from_dram"), sizes(opts.sizes)))[size]}
    ratios: dict = {}
    for impl in IMPLEMENTATIONS:
        for size, n in where.items():
            k = KERNELS[impl](n, ctx.rng("cost inputs", impl, n))
            calls = [({"implementation": impl, "size": size, "n": k.n, "kernel": "relu (A/A)"}, k.activation("relu"))]
            calls += [({"implementation": impl, "size": size, "n": k.n, "kernel": a}, k.activation(a))
                      for a in elementwise]
            if layered:
                calls += [({"implementation": impl, "size": size, "n": k.n, "kernel": f"{a} layer"}, k.layer(a))
                          for a in ["relu", *layered]]
            ts = ctx.time_interleaved("fwd+bwd", calls, items=[k.n] * len(calls),
                                      bytes=[_bytes(c["kernel"], k.n) for c, _ in calls], section=COST_SECTION)
            samples = {c["kernel"]: t.samples for (c, _), t in zip(calls, ts)}
            for kernel, s in samples.items():
                ref = samples["relu layer"] if kernel.endswith(" layer") else samples["relu"]
                ratios[impl, size, kernel] = s / ref
                ctx.record.metric("time_over_relu", s / ref, case={"implementation": impl, "size": size, "n": k.n,
                                                                   "kernel": kernel},
                                  unit="x", section="costs.ratio")
    _cost_cells(ctx, ratios, names, where, COSTLY_FACTOR)
    for point in (p for p in CLAIMS["A9"].points(ctx.quick) if p["size"] in where):
        name, size, impl = point["activation"], point["size"], point["implementation"]
        if name not in names:
            ctx.not_run("A9", f"{name} is not in --activations", point=point)
            continue
        costly = name != "leaky_relu"   # the notes: relu and leaky relu cheap, the others costly
        ctx.finding("A9", _cost_finding(ratios[impl, size, name], name, costly, size, where[size], ctx.seed),
                    point=point, timing=True)
    for size in where:
        for impl in IMPLEMENTATIONS:
            ctx.finding("A9", _cost_finding(ratios[impl, size, "relu (A/A)"], "relu (A/A)", True, size,
                                            where[size], ctx.seed),
                        point={"size": size, "implementation": impl}, role="control", timing=True)


def _bytes(kernel: str, n: int) -> float:
    """Bytes one fwd+bwd call reads and writes: x, y (written then read), g, dx; a layer's matmuls beside."""
    return 4.0 * n * (6 if kernel.endswith(" layer") else 5)


def _cost_finding(ratio: np.ndarray, name: str, costly: bool, size: str, n: int, seed: int):
    from dlbench.experiments.activations import COSTLY_FACTOR

    said = "costly" if costly else "cheap"
    return finding(ratio, direction="greater" if costly else "less", null=COSTLY_FACTOR, seed=seed,
                   label=f"{name} fwd+bwd time / relu's, {size.replace('_', ' ')} (n={n})",
                   note=f"the notes: {said}; costly = at least {COSTLY_FACTOR:g}x relu")


def _cost_cells(ctx: RunContext, ratios: dict, names: list[str], where: dict, factor: float) -> None:
    """A2's cost cells (dlbench's kernels): each named activation against relu, maxout as a layer."""
    from dlbench.experiments.activations import CLAIMS

    impl = "dlbench"
    for point in CLAIMS["A2"].points(ctx.quick):
        name, prop = point["activation"], point["property"]
        if not prop.startswith("cost") or prop[len("cost_"):] not in where:
            continue
        if name not in names:
            ctx.not_run("A2", f"{name} is not in --activations", point=point)
            continue
        size = prop[len("cost_"):]
        text = notes.cell(name, "cost")
        if name == "relu":
            ctx.not_run("A2", "relu is the unit of cost", point=point)
            continue
        kernel = f"{name} layer" if (impl, size, f"{name} layer") in ratios else name
        costly = notes.reading("cost", text)[1] == "costly"
        f = _cost_finding(ratios[impl, size, kernel], kernel, costly, size, where[size], ctx.seed)
        ctx.finding("A2", f, point=point, timing=True)
        ctx.record.metric("agrees", 1.0 if f.verdict == "supported" else 0.0 if f.verdict == "refuted" else math.nan,
                          case={"activation": name, "property": prop, "notes": text,
                                "notes_english": notes.gloss(text),
                                "measured": "maxout layer / relu layer" if kernel.endswith(" layer") else
                                "fwd+bwd / relu's"},
                          unit="bool", section="a2.cells")
    for size in where:
        ctx.finding("A2", _cost_finding(ratios[impl, size, "relu (A/A)"], "relu (A/A)", True, size, where[size],
                                        ctx.seed), point={"property": f"cost_{size}"}, role="control", timing=True)


# ----------------------------------------------------------------------------- A1: per layer or per unit

def layer_costs(opts, ctx: RunContext) -> None:
    """Forward of a dense layer (unit-major: z^T = W^T x^T + b) with one activation for every unit, and with
    each unit its own activation (units grouped by activation), interleaved; A1 from the per-sample ratios."""
    from dlbench.experiments.activations import CLAIMS, IMPLEMENTATIONS

    points = CLAIMS["A1"].points(ctx.quick)
    for impl in IMPLEMENTATIONS:
        for width in sorted({p["width"] for p in points}):
            mixes = list(dict.fromkeys(p["mix"] for p in points if p["width"] == width))
            acts = list(dict.fromkeys(a for mix in mixes for a in mix.split(",")))
            layers = KERNELS[impl].dense_layers(width, acts, mixes, ctx.rng("A1 layer", impl, width))
            calls = [({"implementation": impl, "width": width, "layer": label}, fn) for label, fn in layers.items()]
            items = A1_BATCH * width
            ts = ctx.time_interleaved("forward", calls, items=[items] * len(calls), section="a1.layer")
            samples = {c["layer"]: t.samples for (c, _), t in zip(calls, ts)}
            for point in (p for p in points if p["width"] == width and p["implementation"] == impl):
                mix = point["mix"].split(",")
                one = np.mean([samples[f"all {a}"] for a in mix], axis=0)
                ratio = samples[f"mixed {point['mix']}"] / one
                ctx.record.metric("mixed_over_one", ratio, case={"implementation": impl, "width": width,
                                                                 "mix": point["mix"]}, unit="x", section="a1.layer")
                ctx.finding("A1", finding(ratio, null=A1_NULL, seed=ctx.seed,
                                          label=f"{len(mix)} activations by unit / one per layer, forward time",
                                          note=f"batch {A1_BATCH}, width {width}, units grouped by activation"),
                            point=point, timing=True)
            ctx.finding("A1", finding(samples["all relu (A/A)"] / samples["all relu"], null=AA_NULL, seed=ctx.seed,
                                      label="relu layer / relu layer (A/A), forward time",
                                      note=f"batch {A1_BATCH}, width {width}"),
                        point={"width": width, "implementation": impl}, role="control", timing=True)
