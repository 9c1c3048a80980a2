"""The depth experiment's figure (matplotlib, from the `plot` extra)."""

from __future__ import annotations

import numpy as np

from dlbench.experiments.depth import NAME

FLOOR = 1e-3        # errors below this are drawn at it (a log axis has no 0)
TITLES = {"d1.errors": "D1 · trained nets against the shallow bound", "d2.width": "D2 · width a shallow net needs",
          "d3.errors": "D3 · very wide shallow net against a deep one", "d5.step_time": "D5 · step time per parameter",
          "d6.probes": "D6 · linear probes per layer"}


def draw(results, path) -> None:
    """Five panels, each from its section's rows (first base seed): D1's FVU per budget and depth beside the
    shallow bound, D2's width needed per k against the exact-fit width, D3's wide and deep nets over steps,
    D5's time per parameter over the size grid, D6's probe accuracy per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.rows[results.rows["experiment"] == NAME]
    rows = rows[rows["base_seed"] == rows["base_seed"].min()]
    panels = [(s, fn) for s, fn in (("d1.errors", _d1), ("d2.width", _d2), ("d3.errors", _d3),
                                     ("d5.step_time", _d5), ("d6.probes", _d6)) if (rows["section"] == s).any()]
    ncols = min(3, max(len(panels), 1))
    nrows = -(-max(len(panels), 1) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.0 * nrows), squeeze=False)
    for ax, (section, fn) in zip(axes.flat, panels):
        fn(ax, rows[rows["section"] == section])
        ax.set_title(TITLES[section], fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _median(g, by):
    return g.groupby(by)["value"].median()


def _d1(ax, rows):
    fvu = rows[(rows["metric"] == "fvu") & (rows["p_activation"] == "relu")]
    steps = fvu["p_steps"].max()
    fvu = fvu[fvu["p_steps"] == steps]
    for depth, g in fvu.groupby("p_depth"):
        med = _median(g, "p_budget")
        ax.plot(med.index, np.maximum(med.to_numpy(), FLOOR), "o-", label=f"depth {int(depth)}")
    bound = rows[(rows["metric"] == "shallow_bound") & (rows["p_activation"] == "relu") & (rows["p_steps"] == steps)]
    b = bound.groupby("p_budget")["value"].first()
    ax.plot(b.index, np.maximum(b.to_numpy(), FLOOR), "k--", label="no shallow net below")
    ax.plot(b.index, np.full(len(b), FLOOR), "k:", label="deep construction: 0")
    ax.set(yscale="log", xlabel="parameters (budget)", ylabel=f"exact FVU after {int(steps)} steps (median)")
    ax.legend(fontsize=7)


def _d2(ax, rows):
    need = rows[rows["metric"] == "width_needed"]
    steps = need["p_steps"].max()
    need = need[need["p_steps"] == steps]
    for role, g in need.groupby("p_role"):
        med = _median(g, "p_slot")
        ax.plot(med.index, med.to_numpy(), "o-", label="t^k" if role == "claim" else "control: t^1")
    bound = rows[(rows["metric"] == "width_bound") & (rows["p_steps"] == steps)].groupby("p_slot")["value"].first()
    ax.plot(bound.index, bound.to_numpy(), "k--", label="no fewer units can")
    ks = bound.index.to_numpy(dtype=float)
    ax.plot(ks, 2**ks - 1, "k:", label="exact fit: 2^k - 1")
    ax.set(yscale="log", xlabel="k", ylabel=f"width needed after {int(steps)} steps")
    ax.set_xticks(ks)
    ax.legend(fontsize=7)


def _d3(ax, rows):
    fvu = rows[(rows["metric"] == "fvu") & (rows["p_role"] == "claim")]
    for (k, net), g in fvu.groupby(["p_k", "p_net"]):
        med = _median(g, "p_steps")
        ax.plot(med.index, np.maximum(med.to_numpy(), FLOOR), "o-" if net == "deep" else "s--",
                label=f"k={int(k)} {net}")
    ax.set(xscale="log", yscale="log", xlabel="steps", ylabel="FVU (median)")
    ax.legend(fontsize=7)


def _d5(ax, rows):
    t = rows[(rows["kind"] == "timing") & (rows["p_net"] != "shallow copy")]
    for net, g in t.groupby("p_net"):
        per = g.assign(v=g["value"] / g["items"]).groupby("p_params")["v"].median()
        ax.plot(per.index, per.to_numpy() * 1e9, "o-", label=str(net))
    ax.set(xscale="log", yscale="log", xlabel="parameters", ylabel="ns per parameter per step")
    ax.legend(fontsize=7)


def _d6(ax, rows):
    probes = rows[rows["kind"] == "curve"]
    depth = probes["p_depth"].max()
    probes = probes[(probes["p_depth"] == depth) & (probes["p_steps"] == probes["p_steps"].max())]
    for (metric, act, target), g in probes.groupby(["metric", "p_activation", "p_target"]):
        if metric == "probe_accuracy_at_init" and act != "relu":
            continue
        med = g.groupby("sample")["value"].median()
        style = ":" if metric.endswith("at_init") else "-" if act == "relu" else "--"
        label = f"{act} {target}" + (" at init" if metric.endswith("at_init") else "")
        ax.plot(med.index, med.to_numpy(), style, marker=".", label=label)
    ax.set(xlabel="layer (0 = input)", ylabel="linear-probe test accuracy", ylim=(0.4, 1.02))
    ax.legend(fontsize=7)
