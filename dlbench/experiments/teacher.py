"""Teacher networks: the function a teacher-student data set learns, built from the model core."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def relu_teacher(dim: int, outputs: int = 1, *, width: int = 32, depth: int = 2, activation: str = "relu",
                 seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A random MLP f: R^dim -> R^outputs (depth hidden layers of `width`, kaiming_normal weights,
    torch-default biases, float64), drawn from `seed`; for `dlbench.data.make_dataset("teacher", net=f)`."""
    from dlbench.nn.mlp import MLP, MLPSpec

    net = MLP(MLPSpec(widths=(dim, *(width,) * depth, outputs), activation=activation, init="kaiming_normal",
                      dtype=np.float64))
    params = net.init([seed])

    def f(X: np.ndarray) -> np.ndarray:
        return net.forward(params, np.asarray(X, dtype=np.float64), train=False)[0][0]

    return f
