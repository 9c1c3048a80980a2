"""The norm experiment's figure (matplotlib, from the `plot` extra): N5's accuracy over batch size per norm, and
N12's per-layer gradient norms of the 32-layer nets."""

from __future__ import annotations

from dlbench.experiments.norm import NAME


def draw(results, path) -> None:
    """Left: N5 test accuracy over batch size per norm, median over seeds (the band: 25th to 75th percentile), at
    the first base learning rate. Right: N12 ||dL/dW_l|| per layer, median over seeds, without and with batch
    norm, at init and trained, for each init."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.rows
    rows = rows[rows["experiment"] == NAME]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    acc = rows[(rows["kind"] == "metric") & (rows["section"] == "n5.accuracy") & (rows["metric"] == "test_acc")]
    if len(acc):
        acc = acc[acc["p_base_lr"] == sorted(acc["p_base_lr"].unique())[0]]
        for name, g in acc.groupby("p_norm", sort=False):
            q = g.groupby("p_batch")["value"].quantile([0.25, 0.5, 0.75]).unstack()
            b = q.index.to_numpy(dtype=float)
            left.plot(b, q[0.5], "o-", label=str(name))
            left.fill_between(b, q[0.25], q[0.75], alpha=0.2)
        sizes = sorted(acc["p_batch"].dropna().unique())
        left.set_xscale("log", base=2)
        left.set_xticks(sizes, [f"{b:g}" for b in sizes])
    left.set_xlabel("batch size (lr scaled with it)")
    left.set_ylabel("test accuracy (eval mode)")
    left.set_title("N5 · accuracy over batch size per norm")
    left.grid(alpha=0.3)
    left.legend(loc="best", fontsize=8)
    curves = rows[(rows["kind"] == "curve") & (rows["section"] == "n12.gradients")]
    for (init, when, net), g in curves.groupby(["p_init", "p_when", "p_net"], sort=False):
        style = "-" if net == "batch" else "--"
        right.plot(g["sample"], g["value"], style, label=f"{net}, {init}, {when}")
    right.set_yscale("log")
    right.set_xlabel("layer (1 = first)")
    right.set_ylabel("||dL/dW_l|| (median over seeds)")
    right.set_title("N12 · gradient norms of a 32-layer plain net")
    right.grid(alpha=0.3)
    right.legend(loc="best", fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
