"""The recurrent experiment's figure (matplotlib, from the `plot` extra): N13's test mse per norm and training set,
and the sequences behind each time step's batch statistics."""

from __future__ import annotations

import numpy as np

from dlbench.experiments.recurrent import NAME

NORMS = ("batch", "layer")
LENGTHS = ("varying", "fixed")


def draw(results, path) -> None:
    """Left: test mse per verdict seed (dots) and its median (bar) for batch norm per time step and layer norm, on
    varying and on fixed lengths, at each grid point (hidden units, shortest length). Right: the mean number of
    sequences still running at each step of a training batch (those batch norm's statistics at that step are
    over), per shortest length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.rows
    rows = rows[rows["experiment"] == NAME]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.4), gridspec_kw={"width_ratios": (2, 1)})
    mse = rows[(rows["kind"] == "metric") & (rows["metric"] == "test_mse")]
    ticks, labels, x = [], [], 0.0
    for hidden, net in mse.groupby("p_hidden", sort=True):
        shortests = sorted(net["p_shortest"].unique())
        # the fixed-length set is shared by every grid point of a hidden size: drawn once, as the control
        groups = [(f"lengths {s:g}-12", net[(net["p_lengths"] == "varying") & (net["p_shortest"] == s)])
                  for s in shortests]
        groups.append(("all 12 (control)", net[(net["p_lengths"] == "fixed") & (net["p_shortest"] == shortests[0])]))
        if x:
            left.axvline(x - 0.5, color="grey", lw=0.6)
        for name, group in groups:
            for k, norm in enumerate(NORMS):
                v = group[group["p_norm"] == norm]["value"].to_numpy(float)
                if not len(v):
                    continue
                jitter = np.linspace(-0.12, 0.12, len(v))
                left.plot(x + 0.5 * k + jitter, v, ".", ms=3, alpha=0.5, color=f"C{k}",
                          label=f"{norm} norm" if not ticks else None)
                left.plot([x + 0.5 * k - 0.2, x + 0.5 * k + 0.2], [np.median(v)] * 2, "-", lw=2, color=f"C{k}")
            ticks.append(x + 0.25)
            labels.append(f"{hidden:g} units\n{name}")
            x += 1.5
    left.set_yscale("log")
    left.set_xticks(ticks, labels, fontsize=7)
    left.set_ylabel("test mse (eval mode), per seed; bar: median")
    left.axhline(1 / 6, ls=":", color="grey", lw=0.8, label="always answering 1")
    left.set_title("N13 · batch norm per time step against layer norm")
    left.grid(alpha=0.3, axis="y")
    left.legend(loc="best", fontsize=8)
    curves = rows[(rows["kind"] == "curve") & (rows["metric"] == "sequences_per_step")]
    curves = curves[curves["p_lengths"] == "varying"]
    for shortest, g in curves.groupby("p_shortest", sort=True):
        g = g.groupby("sample")["value"].first()
        right.plot(g.index, g.to_numpy(), "o-", label=f"lengths {shortest:g}-12")
    right.set_xlabel("time step")
    right.set_ylabel("sequences running (mean over batches)")
    right.set_title("N13 · behind each step's statistics")
    right.grid(alpha=0.3)
    right.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
