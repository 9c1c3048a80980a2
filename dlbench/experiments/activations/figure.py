"""The activations experiment's figure (matplotlib, from the `plot` extra)."""

from __future__ import annotations

import numpy as np

from dlbench.experiments.activations import NAME
from dlbench.experiments.activations import measure as am


def draw(results, path) -> None:
    """A10: P(a given layer dead) against depth per width, Monte Carlo points over the analytic curves;
    A6/A7: per-layer factor of the backpropagated gradient per activation and init; A14: relative error of
    one hidden layer's span against width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.rows[results.rows["experiment"] == NAME]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(17, 4.8))
    a10 = rows[(rows["section"] == "a10.dead_layers") & (rows["metric"] == "p_dead")
               & (rows["p_units"] == "independent")]
    for w, g in a10.groupby("p_width"):
        g = g.groupby("p_depth")["value"].median().sort_index()
        line = ax1.plot(g.index, g.values, "o", label=f"W={int(w)}")[0]
        L = np.arange(1, int(g.index.max()) + 1)
        ax1.plot(L, am.dead_layer_analytic(w, L), "-", color=line.get_color(), lw=1)
    ax1.set(xscale="log", xlabel="depth L", ylabel="P(layer L all zero for an input)",
            title="A10: dead relu layers at init (lines: 1-(1-2^-W)^L)")
    ax1.legend(fontsize=8)

    a6 = rows[(rows["section"] == "a6.gradients") & (rows["metric"] == "layer_factor")]
    if len(a6):
        med = a6.groupby(["p_activation", "p_init"], sort=False)["value"].median()
        labels = [f"{a}\n{i}" for a, i in med.index]
        ax2.bar(range(len(med)), med.values)
        ax2.set_xticks(range(len(med)), labels, fontsize=7, rotation=60)
        ax2.axhline(1.0, color="k", lw=0.8)
        for band in (1 / 1.1, 1.1):
            ax2.axhline(band, color="k", lw=0.5, ls=":")
    ax2.set(yscale="log", ylabel="per-layer factor of dL/dz", title="A6, A7: gradient per layer at init")

    a14 = rows[(rows["section"] == "a14.span") & (rows["metric"] == "relative_mse")]
    for (act, target), g in a14.groupby(["p_activation", "p_target"]):
        g = g.groupby("p_width")["value"].median().sort_index()
        ax3.plot(g.index, np.maximum(g.values, 1e-16), "o-" if target == "abs" else "s--", ms=3,
                 label=f"{act}, {target}")
    ax3.axhline(0.01, color="k", lw=0.5, ls=":")
    ax3.set(xscale="log", yscale="log", xlabel="hidden width", ylabel="relative test MSE",
            title="A14: the span of one hidden layer")
    ax3.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
