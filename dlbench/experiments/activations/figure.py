"""The activations experiment's figure (matplotlib, from the `plot` extra)."""

from __future__ import annotations

import numpy as np

from dlbench.experiments.activations import NAME
from dlbench.experiments.activations import measure as am


def draw(results, path) -> None:
    """A10: P(some layer dead) against depth per width, Monte Carlo points over the analytic curves; A6:
    gradient-norm ratio first/last layer per activation (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.rows[results.rows["experiment"] == NAME]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    a10 = rows[rows["section"].str.startswith("A10") & (rows["metric"] == "P(layer dead)")]
    for w, g in a10.groupby("p_width"):
        g = g.sort_values("p_depth")
        line = ax1.plot(g["p_depth"], g["value"], "o", label=f"W={int(w)}")[0]
        L = np.arange(1, int(g["p_depth"].max()) + 1)
        ax1.plot(L, am.dead_layer_analytic(w, L), "-", color=line.get_color(), lw=1)
    ax1.set(xscale="log", xlabel="depth L", ylabel="P(some layer all-zero for an input)",
            title="A10: dead relu layers at init (lines: 1-(1-2^-W)^L)")
    ax1.legend(fontsize=8)
    a6 = rows[rows["section"].str.startswith("A5-A6") & (rows["metric"] == "grad ratio first/last")]
    med = a6.groupby("p_activation", sort=False)["value"].median()
    ax2.bar(med.index, med.values)
    ax2.set(yscale="log", ylabel="||dL/dW_1|| / ||dL/dW_L||", title="A6: gradient ratio at init")
    ax2.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
