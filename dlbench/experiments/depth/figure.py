"""The depth experiment's figure (matplotlib, from the `plot` extra)."""

from __future__ import annotations

import numpy as np

from dlbench.experiments.depth import ERROR_FLOOR, NAME


def draw(results, path) -> None:
    """Test error against parameters per depth (one panel per target); fitted functions against the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.rows[results.rows["experiment"] == NAME]
    err = rows[(rows["section"] == "test error") & (rows["kind"] == "metric")]
    targets = list(dict.fromkeys(err["p_target"]))
    fits = rows[rows["section"] == "fitted functions"]
    truth = rows[rows["section"] == "target functions"]
    fit_targets = [t for t in targets if (fits["p_target"] == t).any()]
    ncols = max(len(targets), 1)
    nrows = 2 if fit_targets else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.6 * nrows), squeeze=False)
    for j, name in enumerate(targets):
        ax = axes[0, j]
        e = err[err["p_target"] == name]
        for depth, g in e.groupby("p_depth", sort=True):
            med = g[g["metric"] == "test_error"].groupby("p_budget")["value"].median()
            lo = g[g["metric"] == "test_error"].groupby("p_budget")["value"].quantile(0.25)
            hi = g[g["metric"] == "test_error"].groupby("p_budget")["value"].quantile(0.75)
            n = g[g["metric"] == "params"].groupby("p_budget")["value"].first().reindex(med.index)
            ax.errorbar(n, np.maximum(med, ERROR_FLOOR), yerr=[med - lo, hi - med], marker="o", capsize=2,
                        label=f"depth {int(depth)}")
        ax.set(xscale="log", yscale="log", xlabel="parameters", ylabel="test error", title=name)
        ax.legend(fontsize=8)
    for j, name in enumerate(fit_targets):
        ax = axes[1, j]
        t = truth[truth["p_target"] == name]
        y = t[t["metric"] == "target"].sort_values("sample")["value"].to_numpy()
        x = np.linspace(t[t["metric"] == "x_start"]["value"].iloc[0], t[t["metric"] == "x_end"]["value"].iloc[0],
                        y.size)
        ax.plot(x, y, "k-", lw=2, label="target")
        f = fits[fits["p_target"] == name]
        for depth, g in f.groupby("p_depth", sort=True):
            ax.plot(x, g.sort_values("sample")["value"], lw=1, label=f"depth {int(depth)}")
        ax.set(xlabel="x", ylabel="y (standardised)",
               title=f"{name}: fits at {int(f['p_budget'].iloc[0])} params (median seed)")
        ax.legend(fontsize=8)
    for j in range(len(fit_targets), ncols):
        if nrows > 1:
            axes[1, j].axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
