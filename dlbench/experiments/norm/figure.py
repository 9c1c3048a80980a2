"""The norm experiment's figure (matplotlib, from the `plot` extra)."""

from __future__ import annotations

from dlbench.experiments.norm import NAME


def draw(results, path) -> None:
    """Test accuracy over batch size per norm: median over seeds, band from the 25th to the 75th percentile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.rows
    rows = rows[(rows["experiment"] == NAME) & (rows["kind"] == "metric") & (rows["metric"] == "test_acc")
                & rows["section"].str.startswith("N5 test accuracy")]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, g in rows.groupby("p_norm", sort=False):
        stats = g.groupby("p_batch")["value"].quantile([0.25, 0.5, 0.75]).unstack()
        b = stats.index.to_numpy(dtype=float)
        ax.plot(b, stats[0.5], "o-", label=str(name))
        ax.fill_between(b, stats[0.25], stats[0.75], alpha=0.2)
    ax.set_xscale("log", base=2)
    sizes = sorted(rows["p_batch"].dropna().unique())
    ax.set_xticks(sizes, [f"{b:g}" for b in sizes])
    ax.set_xlabel("batch size (lr scaled with it)")
    ax.set_ylabel("test accuracy (eval mode)")
    ax.set_title("accuracy over batch size per norm (N5)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
