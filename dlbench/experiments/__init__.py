"""The experiment registry: one line per experiment module.

Each module follows the contract in `dlbench.experiments.base`; the CLI generates
its subcommand, `dlbench suite` runs them all, in this order.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from dlbench.errors import UnknownName

MODULES = {
    # name: module
    "init": "dlbench.experiments.init",
    "norm": "dlbench.experiments.norm",
    "recurrent": "dlbench.experiments.recurrent",
    "activations": "dlbench.experiments.activations",
    "depth": "dlbench.experiments.depth",
    "optimizers": "dlbench.experiments.optimizers",
}


def names() -> list[str]:
    return list(MODULES)


def load(name: str) -> ModuleType:
    if name not in MODULES:
        raise UnknownName("experiment", name, MODULES)
    return importlib.import_module(MODULES[name])
