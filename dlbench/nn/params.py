"""The parameter table a model keeps: each parameter's name and its shape for one replica, in the order of the
model's flat parameter lists (the arrays themselves carry a leading replica axis)."""

from __future__ import annotations

import numpy as np


class ParamTable:
    """Base of the models: `param_names` and one replica's shapes, filled by `_add` as the model is built."""

    param_names: list[str]
    _shapes: list[tuple]

    def _add(self, name: str, shape: tuple) -> int:
        """Append a parameter; its index in the flat parameter list."""
        self.param_names.append(name)
        self._shapes.append(tuple(shape))
        return len(self._shapes) - 1

    @property
    def n_params(self) -> int:
        """Number of learnable scalars of one replica."""
        return int(sum(np.prod(s) for s in self._shapes))

    @property
    def param_shapes(self) -> list[tuple]:
        """Shape of each parameter of one replica (the arrays carry a leading replica axis in front)."""
        return list(self._shapes)
