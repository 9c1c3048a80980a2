"""The init experiment's figure (matplotlib, from the `plot` extra)."""

from __future__ import annotations

import math

from dlbench.experiments.init import NAME, SECTIONS


def draw(results, path) -> None:
    """Per-layer std of activations and gradients (median over seeds), one line per scheme, for the main
    profile and the I3 scale sweep; the mean-field prediction dashed where it exists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.rows[results.rows["experiment"] == NAME]
    curves = rows[rows["kind"] == "curve"]
    analytic = rows[rows["metric"] == "analytic_ratio"].groupby("case")["value"].first()
    panels = [("init.profile", "scheme"), ("i3.scale_sweep", "scale")]
    panels = [(s, key) for s, key in panels if (curves["section"] == s).any()]
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.8 * len(panels)), squeeze=False)
    for i, (section, key) in enumerate(panels):
        sec = curves[curves["section"] == section]
        for j, (metric, what) in enumerate((("act_std", "std(h_l)"), ("grad_std", "std(dL/dz_l)"))):
            ax = axes[i, j]
            for case, g in sec[sec["metric"] == metric].groupby("case", sort=False):
                curve = g.groupby("sample")["value"].median()
                first = g.iloc[0]
                label = str(first["p_scheme"]) if key == "scheme" else f"x{first['p_scale']:g}"
                line, = ax.plot(curve.index, curve.to_numpy(), marker=".", lw=1, label=label)
                ratio = analytic.get(case, math.nan)
                if math.isfinite(ratio) and ratio > 0:
                    # the prediction starts where the signal enters: layer 1 forward, layer L backward
                    l, L = curve.index.to_numpy(dtype=float), float(curve.index.max())
                    start, steps = (curve.iloc[0], l - 1) if metric == "act_std" else (curve.iloc[-1], L - l)
                    ax.plot(l, start * ratio ** (steps / (L - 1)), ls="--", lw=0.8, color=line.get_color())
            ax.set(yscale="log", xlabel="layer l", ylabel=what,
                   title=f"{SECTIONS[section]}: {what}" + (" (dashed: mean field)" if j == 0 else ""))
            ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
