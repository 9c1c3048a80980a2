"""The activations experiment's timing parts: forward+backward cost against relu (A2's cost cells, A9) and a
dense layer with one activation per layer or per unit (A1).

Every comparison is timed interleaved (`RunContext.time_interleaved`: sample j of every call before sample
j + 1 of any) and judged on the per-sample ratios, so a change of the machine's load falls on both sides.
Kernels come from an implementation (`KERNELS`): dlbench's own, and torch's when torch imports (the claims'
`implementation` axis, `dlbench.peer`). Both implementations' calls are timed in one interleaved set with the
same harness settings, torch on as many threads as dlbench's kernels (one, unless --threads), each ratio
against relu of its own implementation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dlbench import peer
from dlbench.experiments.activations import notes
from dlbench.experiments.base import RunContext
from dlbench.nn.parallel import current_threads
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


class TorchKernels:
    """torch's calls for the same operations (`dlbench.peer`), over the same float32 inputs made outside the
    timed region; results allocated as a torch user's code allocates them (torch.nn.functional's forward,
    aten's backward, torch.mm, torch.addmm, torch.cat). A call torch has no counterpart for is None."""

    name = "torch"

    def __init__(self, n: int, rng: np.random.Generator):
        rows = max(1, n // LANES)
        self.n = rows * LANES
        self.x = rng.standard_normal((rows, LANES), dtype=np.float32)
        self.g = rng.standard_normal((rows, LANES), dtype=np.float32)
        self.rng = rng

    def activation(self, name: str) -> Callable[[], object] | None:
        """Forward then backward of an elementwise activation over n elements (y and dx allocated by torch)."""
        from dlbench.nn.activations import ACTIVATIONS

        if ACTIVATIONS[name].pieces != 1:
            raise ValueError(f"{name} is not elementwise: time it as a layer")
        return peer.kernel("activation", name, self.x, self.g, impl="torch")

    def layer(self, name: str) -> Callable[[], object] | None:
        """The dense layer of `DlbenchKernels.layer` in torch: torch.mm, the activation's forward and aten
        backward, torch.mm for dW and dh."""
        from dlbench.nn.activations import ACTIVATIONS

        k = ACTIVATIONS[name].pieces
        W = (self.rng.standard_normal((LANES, LANES * k), dtype=np.float32) / np.float32(math.sqrt(LANES)))
        return peer.kernel("dense", name, self.x, W, self.g, impl="torch")

    @staticmethod
    def dense_layers(width: int, acts: list[str], mixes: list[str], rng: np.random.Generator) -> dict:
        """`DlbenchKernels.dense_layers` in torch: z^T = torch.addmm(b, W^T, x^T), then one activation over z,
        or each unit block's activation over its rows of z joined by torch.cat (a torch user's per-unit
        activations; an activation torch lacks leaves its layers out)."""
        import torch   # only built where torch imports (the implementation axis holds it)

        xt = torch.from_numpy(rng.standard_normal((width, A1_BATCH), dtype=np.float32))
        Wt = torch.from_numpy((rng.standard_normal((width, width)) / math.sqrt(width)).astype(np.float32))
        bt = torch.zeros((width, 1), dtype=torch.float32)
        forward = {a: (peer.torch_activation(a) or (None,))[0] for a in dict.fromkeys(["relu", *acts])}

        def one(f):
            return lambda: f(torch.addmm(bt, Wt, xt))

        def mixed(blocks):
            def forward_mixed():
                z = torch.addmm(bt, Wt, xt)
                return torch.cat([f(z[a:b]) for f, a, b in blocks])
            return forward_mixed

        layers = {"all relu": one(forward["relu"]), "all relu (A/A)": one(forward["relu"])}
        layers.update({f"all {a}": one(forward[a]) for a in acts if a != "relu" and forward[a] is not None})
        for mix in mixes:
            names = mix.split(",")
            counts = np.bincount(rng.permutation(np.arange(width) % len(names)), minlength=len(names))
            if any(forward[a] is None for a in names):
                continue
            edges = np.concatenate([[0], np.cumsum(counts)])
            layers[f"mixed {mix}"] = mixed([(forward[a], int(lo), int(hi)) for a, lo, hi in
                                            zip(names, edges[:-1], edges[1:]) if hi > lo])
        return layers


KERNELS = {"dlbench": DlbenchKernels, "torch": TorchKernels}


def kernel_bytes(n: int, implementations: tuple[str, ...] = ("dlbench",)) -> int:
    """Bytes of the cost kernels' buffers at size n: dlbench's x, y, g, dx and each layer's z, dz, dh (maxout's
    2x); torch's own x and g and what its largest call (the maxout layer) allocates while it runs."""
    return 4 * n * (14 + (8 if "torch" in implementations else 0))


def _threads():
    """torch on as many threads as dlbench's kernels: one, unless the run's --threads says otherwise."""
    return peer.threads(current_threads())


# ----------------------------------------------------------------------------- A2's cost cells and A9

def kernel_costs(opts, ctx: RunContext, size: str = "in_cache") -> None:
    """Forward+backward of every selected activation, relu's twice (the A/A control), and the relu and
    maxout layers, in every implementation of the run, all interleaved at one of the two sizes ('in_cache'
    or 'from_dram'); A2's cost cells and A9 at that size from the ratios to relu of the same implementation."""
    from dlbench.experiments.activations import IMPLEMENTATION, activation_names, sizes
    from dlbench.nn.activations import ACTIVATIONS

    names = activation_names(opts.activations)
    elementwise = [n for n in dict.fromkeys(["relu", *names]) if ACTIVATIONS[n].pieces == 1]
    layered = [n for n in names if ACTIVATIONS[n].pieces > 1]
    n = dict(zip(("in_cache", "from_dram"), sizes(opts.sizes)))[size]
    calls = []
    for impl in IMPLEMENTATION.grid(ctx.quick):
        k = KERNELS[impl](n, ctx.rng("cost inputs", n))   # the same inputs for every implementation
        kernels = [("relu (A/A)", k.activation("relu"))] + [(a, k.activation(a)) for a in elementwise]
        if layered:
            kernels += [(f"{a} layer", k.layer(a)) for a in ["relu", *layered]]
        calls += [({"implementation": impl, "size": size, "n": k.n, "kernel": name}, fn)
                  for name, fn in kernels if fn is not None]
    with _threads():
        ts = ctx.time_interleaved("fwd+bwd", calls, items=[c["n"] for c, _ in calls],
                                  bytes=[_bytes(c["kernel"], c["n"]) for c, _ in calls], section=COST_SECTION)
    samples = {(c["implementation"], c["kernel"]): t.samples for (c, _), t in zip(calls, ts)}
    n = calls[0][0]["n"]
    ratios: dict = {}
    for (impl, kernel), s in samples.items():
        ref = samples.get((impl, "relu layer" if kernel.endswith(" layer") else "relu"))
        if ref is None:
            continue
        ratios[impl, kernel] = s / ref
        ctx.record.metric("time_over_relu", s / ref, case={"implementation": impl, "size": size, "n": n,
                                                           "kernel": kernel}, unit="x", section="costs.ratio")
    _cost_cells(ctx, ratios, names, size, n)
    _a9(ctx, ratios, names, size, n)


def _a9(ctx: RunContext, ratios: dict, names: list[str], size: str, n: int) -> None:
    """A9 at one size from the ratios: each named activation at each implementation, and the A/A control."""
    from dlbench.experiments.activations import CLAIMS

    impls = []
    for point in (p for p in CLAIMS["A9"].points(ctx.quick) if p["size"] == size):
        name, impl = point["activation"], point["implementation"]
        impls.append(impl)
        if name not in names:
            ctx.not_run("A9", f"{name} is not in --activations", point=point)
        elif (impl, name) not in ratios:
            ctx.not_run("A9", f"{peer.label(impl)} has no {name} kernel", point=point)
        else:
            costly = name != "leaky_relu"   # the notes: relu and leaky relu cheap, the others costly
            ctx.finding("A9", _cost_finding(ratios[impl, name], name, costly, size, n, impl, ctx.seed),
                        point=point, timing=True)
    for impl in dict.fromkeys(impls):
        ctx.finding("A9", _cost_finding(ratios[impl, "relu (A/A)"], "relu (A/A)", True, size, n, impl, ctx.seed),
                    point={"size": size, "implementation": impl}, role="control", timing=True)


def _bytes(kernel: str, n: int) -> float:
    """Bytes one fwd+bwd call reads and writes: x, y (written then read), g, dx; a layer's matmuls beside."""
    return 4.0 * n * (6 if kernel.endswith(" layer") else 5)


def _cost_finding(ratio: np.ndarray, name: str, costly: bool, size: str, n: int, impl: str, seed: int):
    from dlbench.experiments.activations import COSTLY_FACTOR

    said = "costly" if costly else "cheap"
    return finding(ratio, direction="greater" if costly else "less", null=COSTLY_FACTOR, seed=seed,
                   label=f"{name} fwd+bwd time / relu's, {size.replace('_', ' ')} (n={n}), {peer.label(impl)}",
                   note=f"the notes: {said}; costly = at least {COSTLY_FACTOR:g}x relu")


def _cost_cells(ctx: RunContext, ratios: dict, names: list[str], size: str, n: int) -> None:
    """A2's cost cells at one size, in each implementation: each named activation against relu, maxout as a
    layer against the relu layer."""
    from dlbench.experiments.activations import CLAIMS
    from dlbench.nn.activations import ACTIVATIONS

    impls = []
    for point in CLAIMS["A2"].points(ctx.quick):
        name, prop, impl = point["activation"], point["property"], point["implementation"]
        if prop != f"cost_{size}":
            continue
        impls.append(impl)
        if name not in names:
            ctx.not_run("A2", f"{name} is not in --activations", point=point)
            continue
        text = notes.cell(name, "cost")
        if name == "relu":
            ctx.not_run("A2", "relu is the unit of cost", point=point)
            continue
        kernel = f"{name} layer" if ACTIVATIONS[name].pieces > 1 else name
        if (impl, kernel) not in ratios:
            ctx.not_run("A2", f"{peer.label(impl)} has no {kernel} kernel", point=point)
            continue
        costly = notes.reading("cost", text)[1] == "costly"
        f = _cost_finding(ratios[impl, kernel], kernel, costly, size, n, impl, ctx.seed)
        ctx.finding("A2", f, point=point, timing=True)
        ctx.record.metric("agrees", 1.0 if f.verdict == "supported" else 0.0 if f.verdict == "refuted" else math.nan,
                          case={"activation": name, "property": prop, "implementation": impl, "notes": text,
                                "notes_english": notes.gloss(text),
                                "measured": "maxout layer / relu layer" if kernel.endswith(" layer") else
                                "fwd+bwd / relu's"},
                          unit="bool", section="a2.cells")
    for impl in dict.fromkeys(impls):
        ctx.finding("A2", _cost_finding(ratios[impl, "relu (A/A)"], "relu (A/A)", True, size, n, impl, ctx.seed),
                    point={"property": f"cost_{size}", "implementation": impl}, role="control", timing=True)


# ----------------------------------------------------------------------------- A1: per layer or per unit

def layer_costs(opts, ctx: RunContext) -> None:
    """Forward of a dense layer (unit-major: z^T = W^T x^T + b) with one activation for every unit, and with
    each unit its own activation (units grouped by activation), in every implementation of the run, all
    interleaved; A1 from the per-sample ratios within each implementation."""
    from dlbench.experiments.activations import CLAIMS

    points = CLAIMS["A1"].points(ctx.quick)
    impls = list(dict.fromkeys(p["implementation"] for p in points))
    for width in sorted({p["width"] for p in points}):
        mixes = list(dict.fromkeys(p["mix"] for p in points if p["width"] == width))
        acts = list(dict.fromkeys(a for mix in mixes for a in mix.split(",")))
        calls = []
        for impl in impls:   # the same weights, inputs and unit blocks for every implementation
            layers = KERNELS[impl].dense_layers(width, acts, mixes, ctx.rng("A1 layer", width))
            calls += [({"implementation": impl, "width": width, "layer": label}, fn) for label, fn in layers.items()]
        items = A1_BATCH * width
        with _threads():
            ts = ctx.time_interleaved("forward", calls, items=[items] * len(calls), section="a1.layer")
        samples = {(c["implementation"], c["layer"]): t.samples for (c, _), t in zip(calls, ts)}
        for point in (p for p in points if p["width"] == width):
            impl, mix = point["implementation"], point["mix"].split(",")
            wanted = [(impl, f"all {a}") for a in mix] + [(impl, f"mixed {point['mix']}")]
            if any(w not in samples for w in wanted):
                ctx.not_run("A1", f"{peer.label(impl)} lacks an activation of {point['mix']}", point=point)
                continue
            one = np.mean([samples[impl, f"all {a}"] for a in mix], axis=0)
            ratio = samples[impl, f"mixed {point['mix']}"] / one
            ctx.record.metric("mixed_over_one", ratio, case={"implementation": impl, "width": width,
                                                             "mix": point["mix"]}, unit="x", section="a1.layer")
            ctx.finding("A1", finding(ratio, null=A1_NULL, seed=ctx.seed,
                                      label=f"{len(mix)} activations by unit / one per layer, forward time, "
                                            f"{peer.label(impl)}",
                                      note=f"batch {A1_BATCH}, width {width}, units grouped by activation"),
                        point=point, timing=True)
        for impl in impls:
            ctx.finding("A1", finding(samples[impl, "all relu (A/A)"] / samples[impl, "all relu"], null=AA_NULL,
                                      seed=ctx.seed, label=f"relu layer / relu layer (A/A), forward time, "
                                                           f"{peer.label(impl)}",
                                      note=f"batch {A1_BATCH}, width {width}"),
                        point={"width": width, "implementation": impl}, role="control", timing=True)
