"""A small experiment module used to test the machinery every experiment shares."""

from dataclasses import dataclass

import numpy as np

from dlbench.experiments.base import Part, option
from dlbench.protocol import Axis, CheckSpec, ClaimSpec
from dlbench.stats import finding

NAME = "toy"
HELP = "A toy experiment for the tests."
CLAIMS = {
    "T1": ClaimSpec("T1", "the toy effect is positive", measures="median per-seed effect above 0",
                    control="an effect of scale 0", grid=(Axis("factor", (1.0, 2.0)),),
                    threshold="any positive effect", literature="none"),
}
CHECKS = {"T2": CheckSpec("T2", "an exact identity holds", tolerance="rounding", claim="T1")}
SECTIONS = {"toy.loss": "losses"}


@dataclass
class Options:
    shape: str = option("bowl", help="Which shape.", choices=lambda: ["bowl", "cliff"])
    steps: int = option(100, help="Steps.", min=1, quick=10, paper=1000)
    scale: float = option(1.0, help="Effect size.")


def parts(opts):
    return [Part("toy.measure", measure), Part("toy.timing", time_relu, timing=True)]


def measure(opts, ctx):
    effects = ctx.rng("effects").normal(opts.scale, 0.1, ctx.seeds)
    for name, factor in (("a", 1.0), ("b", 2.0)):
        case = {"shape": opts.shape, "opt": name}
        ctx.record.metric("loss", effects * factor, case=case, better="lower", seeds=ctx.seed_list,
                          section="toy.loss")
        ctx.record.curve("loss", np.exp(-np.arange(opts.steps) / 10) * factor, case=case, seed=ctx.seed,
                         section="toy.loss")
    for factor in CLAIMS["T1"].grid[0].values:
        ctx.finding("T1", finding(effects * factor, label="effect"), point={"factor": factor})
    noise = ctx.rng("control").normal(0.0, 0.1, ctx.seeds)
    ctx.finding("T1", finding(noise, label="effect at scale 0"), role="control")
    ctx.check("T2", 0.0, 1e-12, what="max |diff|", claim="T1")


def time_relu(opts, ctx):
    x = np.ones(4096, np.float32)
    y = np.empty_like(x)
    ctx.time("relu", np.maximum, x, 0, out=y, case={"n": x.size}, items=x.size, bytes=2 * x.nbytes)
