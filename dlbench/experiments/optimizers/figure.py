"""The optimizers experiment's figure (matplotlib, from the `plot` extra)."""

from __future__ import annotations

import math

import numpy as np

from dlbench.experiments.optimizers import NAME
from dlbench.experiments.optimizers.trajectories import make_surface


def draw(results, path) -> None:
    """Trajectories over the surface's contours (2-d surfaces), else the median loss curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.rows
    rows = rows[rows["experiment"] == NAME]
    opts = results.meta.get("options", {}).get(NAME, {})
    surface = opts.get("surface", "canyon")
    paths = rows[(rows["section"] == "paths") & (rows["p_surface"] == surface)] if "p_surface" in rows else rows[:0]
    if len(paths):
        names = list(dict.fromkeys(paths["p_optimizer"]))
        hyper = {"kappa": opts["kappa"]} if opts.get("kappa") is not None and surface in ("canyon", "quadratic") else {}
        surf = make_surface(surface, **hyper)
        xs, ys = paths[paths["metric"] == "x"]["value"], paths[paths["metric"] == "y"]["value"]
        lo = np.minimum(surf.start_low, [np.nanpercentile(xs, 1), np.nanpercentile(ys, 1)])
        hi = np.maximum(surf.start_high, [np.nanpercentile(xs, 99), np.nanpercentile(ys, 99)])
        pad = 0.1 * (hi - lo)
        gx, gy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], 200),
                             np.linspace(lo[1] - pad[1], hi[1] + pad[1], 200))
        with np.errstate(all="ignore"):
            f = surf.value(np.stack([gx, gy]))
            f = np.log10(f - np.nanmin(f) + 1e-3) if np.isfinite(surf.min_value) else f
        cols = min(4, len(names))
        nrows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.4 * nrows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            ax.contour(gx, gy, f, levels=25, cmap="viridis", linewidths=0.6)
            sub = paths[paths["p_optimizer"] == name]
            for seed, g in sub.groupby("seed"):
                x = g[g["metric"] == "x"].sort_values("sample")["value"].to_numpy()
                y = g[g["metric"] == "y"].sort_values("sample")["value"].to_numpy()
                ax.plot(x, y, "-", lw=0.9, alpha=0.85)
                ax.plot(x[:1], y[:1], "o", ms=3, color="k")
            if len(surf.minima):
                ax.plot(surf.minima[:, 0], surf.minima[:, 1], "*", ms=9, color="red")
            lr = rows[(rows["section"] == "trajectories") & (rows["p_optimizer"] == name)
                      & (rows["metric"] == "lr") & (rows["p_surface"] == surface)]["value"]
            ax.set_title(f"{name}" + (f"  lr={lr.iloc[0]:g}" if len(lr) else ""), fontsize=9)
            ax.set_xlim(gx.min(), gx.max())
            ax.set_ylim(gy.min(), gy.max())
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        fig.suptitle(f"dlbench optimizers: trajectories on {surface}", fontsize=11)
    else:
        curves = rows[(rows["section"] == "trajectories") & (rows["kind"] == "curve")]
        curves = curves[curves["p_surface"] == surface] if "p_surface" in curves else curves
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, g in curves.groupby("p_optimizer", sort=False):
            g = g.sort_values("sample")
            ax.plot(g["sample"], g["value"], label=name)
        if len(curves) and (curves["value"] > 0).all():
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("median loss over starts")
        ax.legend(fontsize=8)
        ax.set_title(f"dlbench optimizers: loss on {surface}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
