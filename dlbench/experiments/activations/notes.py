"""The lecture notes' activation table (section 2.2), verbatim, and how each of its cells is read.

A cell states something checkable about one property of one activation ("0~0.25": the derivative lies in
[0, 0.25]), commits to nothing ("可能", maybe), or is blank (its mark did not survive). `reading` turns a
cell into a (kind, value) pair; `agrees` holds a reading against the measured properties (see
`measure.Properties`); the cost cells are judged by timing (see `costs`), not here.
"""

from __future__ import annotations

import math

from dlbench.experiments.activations.measure import Properties, slope_alpha

#: The table's columns 非线性 0均值 单调性 输出范围 导数 参数 计算, as the properties they state.
PROPERTIES = ("nonlinear", "zero_centred", "monotonic", "output_range", "derivative", "hyperparameters", "cost")

#: The notes' section 2.2, verbatim. Empty strings are the blank cells.
NOTES_TABLE: dict[str, dict] = {
    "ReLU": {"names": ("relu",), "cells": ("非线性", "", "", "0; 0~+∞", "0或1 (解决了梯度消失问题)", "", "简单")},
    "ELU": {"names": ("elu",),
            "cells": ("非线性", "近似", "", "-∞~0; 0~+∞ (解决神经元死亡问题)", "0~1", "超参", "复杂")},
    "LReLU PReLU": {"names": ("leaky_relu", "prelu"),
                    "cells": ("非线性", "近似", "", "-∞~0; 0~+∞ (解决神经元死亡问题)", "α相关", "超参", "简单")},
    "maxout": {"names": ("maxout",), "cells": ("非线性", "可能", "可能", "无上下限", "w相关", "", "复杂,量大")},
    "Sigmoid": {"names": ("sigmoid",), "cells": ("非线性", "", "", "0~1", "0~0.25", "", "复杂,耗时")},
    "tanh": {"names": ("tanh",), "cells": ("非线性", "", "", "-1~1", "0~1", "", "复杂,耗时")},
    "sin/cos": {"names": ("sin",), "cells": ("非线性", "", "", "-1~1", "-1~1", "", "复杂,耗时")},
}

#: Every activation the table names, in its row order.
TABLE_ACTIVATIONS = tuple(n for e in NOTES_TABLE.values() for n in e["names"])

INF = math.inf

#: What each non-blank cell states; None for cells that commit to nothing (可能 "maybe", w相关 "depends on w").
_READING = {
    "非线性": ("nonlinear", True),
    "近似": ("zero", "approximately"),
    "可能": None,
    "0; 0~+∞": ("range", (0.0, INF)),
    "-∞~0; 0~+∞ (解决神经元死亡问题)": ("range", (-INF, INF)),
    "无上下限": ("range", (-INF, INF)),
    "0或1 (解决了梯度消失问题)": ("set", (0.0, 1.0)),
    "α相关": ("alpha_set", None),
    "w相关": None,
    "0~0.25": ("interval", (0.0, 0.25)),
    "超参": ("hyper", True),
    "简单": ("cost", "cheap"),
    "复杂": ("cost", "costly"),
    "复杂,量大": ("cost", "costly"),
    "复杂,耗时": ("cost", "costly"),
}

#: English glosses of the notes' words, for the evidence lines.
GLOSS = {"非线性": "nonlinear", "近似": "approximately", "可能": "maybe", "无上下限": "no bounds",
         "0或1": "0 or 1", "α相关": "depends on α", "w相关": "depends on w", "超参": "hyperparameter",
         "简单": "simple", "复杂": "complex", "量大": "large amount", "耗时": "time-consuming",
         "解决了梯度消失问题": "solves vanishing gradients", "解决神经元死亡问题": "solves dying neurons"}


def gloss(text: str) -> str:
    """The cell in English where the notes' words have a gloss ('复杂,耗时' -> 'complex, time-consuming')."""
    out = text
    for zh, en in sorted(GLOSS.items(), key=lambda kv: -len(kv[0])):
        out = out.replace(zh, en)
    return out.replace(",", ", ")


def row_of(name: str) -> str | None:
    """The notes' row that names activation `name`, or None."""
    for row, entry in NOTES_TABLE.items():
        if name in entry["names"]:
            return row
    return None


def cell(name: str, prop: str) -> str:
    """The notes' cell for activation `name` and property `prop` ('' when blank or not in the table)."""
    row = row_of(name)
    return NOTES_TABLE[row]["cells"][PROPERTIES.index(prop)] if row else ""


def reading(prop: str, text: str):
    """(kind, value) that a cell states for property `prop`; None when blank or non-committal."""
    if not text:
        return None
    if text in ("0~1", "-1~1"):
        lo = -1.0 if text.startswith("-") else 0.0
        return ("range", (lo, 1.0)) if prop == "output_range" else ("interval", (lo, 1.0))
    return _READING[text]


def _same(a: float, b: float, tol: float = 1e-3) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol * max(1.0, abs(b))


def fmt_bound(v: float) -> str:
    return "+∞" if v == INF else "-∞" if v == -INF else f"{v:.4g}"


def measured_text(prop: str, p: Properties, act) -> str:
    """The measured value of one exact property, as a short stable string."""
    if prop == "nonlinear":
        return "yes" if p.nonlinearity > 1e-6 else "no"
    if prop == "monotonic":
        return "yes" if p.monotonic else "no"
    if prop == "output_range":
        return f"{fmt_bound(p.out_low)} ~ {fmt_bound(p.out_high)}"
    if prop == "derivative":
        if p.d_values is not None:
            return " or ".join(f"{v:.4g}" for v in p.d_values)
        return f"{p.d_low:.4g} ~ {p.d_high:.4g}"
    if prop == "hyperparameters":
        return f"{p.hyper}" + (f" (+{p.learned} learned)" if p.learned else "")
    raise ValueError(prop)


def agrees(read, p: Properties, act) -> bool:
    """Whether the measured properties match what an exact cell states (its reading, not None)."""
    kind, value = read
    if kind == "nonlinear":
        return p.nonlinearity > 1e-6
    if kind == "range":
        return _same(p.out_low, value[0]) and _same(p.out_high, value[1])
    if kind == "interval":
        return _same(p.d_low, value[0]) and _same(p.d_high, value[1])
    if kind == "set":
        return p.d_values is not None and len(p.d_values) == len(value) and all(
            _same(a, b) for a, b in zip(p.d_values, value))
    if kind == "alpha_set":
        a = slope_alpha(act)
        want = tuple(sorted((a, 1.0))) if a is not None else None
        return want is not None and p.d_values is not None and len(p.d_values) == 2 and all(
            _same(x, w) for x, w in zip(p.d_values, want))
    if kind == "hyper":
        return p.hyper >= 1
    raise ValueError(kind)
