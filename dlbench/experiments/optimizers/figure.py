"""The optimizers experiment's figure (matplotlib, from the `plot` extra).

On a 2-d surface the first evaluation paths of each optimizer are drawn over the contours. The results
file does not hold paths (they would grow with --steps): the figure reruns those runs, from the same
starts with the same noise at the recorded learning rates, keeping each path at the loss curve's steps.
"""

from __future__ import annotations

import math

import numpy as np

from dlbench.experiments.optimizers import NAME, Options


def draw(results, path) -> None:
    """Trajectories over the surface's contours (2-d surfaces), else the median loss curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlbench.experiments.optimizers import main

    rows = results.rows
    rows = rows[rows["experiment"] == NAME]
    meta = results.meta
    stored = meta.get("options", {}).get(NAME, {})
    opts = Options(**{k: v for k, v in stored.items() if k in Options.__dataclass_fields__})
    surface = opts.surface
    main_rows = rows[(rows["section"] == "trajectories")]
    if "p_surface" in main_rows:
        main_rows = main_rows[main_rows["p_surface"] == surface]
    seed = int(meta.get("seed", 0))
    if "base_seed" in main_rows:
        main_rows = main_rows[main_rows["base_seed"] == seed]
    lr_rows = main_rows[main_rows["metric"] == "lr"]
    lrs = {str(o): float(v) for o, v in zip(lr_rows["p_optimizer"], lr_rows["value"])}
    s = main.setup(opts, main.configure(opts), bool(meta.get("quick", False)))
    surf = s.surface
    if surf.dim == 2 and lrs:
        found = main.paths(opts, seed, lrs, bool(meta.get("quick", False)))
        names = list(found)
        pts = np.concatenate([p[:, :, :].transpose(1, 0, 2).reshape(2, -1) for _, p in found.values()], axis=1)
        pts = pts[:, np.isfinite(pts).all(axis=0)]
        lo = np.minimum(surf.start_low, np.percentile(pts, 1, axis=1) if pts.size else surf.start_low)
        hi = np.maximum(surf.start_high, np.percentile(pts, 99, axis=1) if pts.size else surf.start_high)
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
            _, p = found[name]
            for j in range(p.shape[2]):
                ax.plot(p[:, 0, j], p[:, 1, j], "-", lw=0.9, alpha=0.85)
                ax.plot(p[:1, 0, j], p[:1, 1, j], "o", ms=3, color="k")
            if len(surf.minima):
                ax.plot(surf.minima[:, 0], surf.minima[:, 1], "*", ms=9, color="red")
            ax.set_title(f"{name}  lr={lrs[name]:g}", fontsize=9)
            ax.set_xlim(gx.min(), gx.max())
            ax.set_ylim(gy.min(), gy.max())
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        fig.suptitle(f"dlbench optimizers: trajectories on {surface} (every k-th step of {s.steps})", fontsize=11)
    else:
        curves = main_rows[main_rows["kind"] == "curve"]
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
