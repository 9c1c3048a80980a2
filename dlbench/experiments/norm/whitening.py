"""ZCA whitening as a layer, forward beside its closed-form backward (Huang et al. 2018, arXiv:1804.08450).

Over the rows of x (..., N, F), with the biased covariance of the batch and eps added as batch norm adds it:

    mu = mean_n x,   X_c = x - mu,   Sigma = X_c^T X_c / N + eps I = U diag(s^2) U^T,
    W = Sigma^(-1/2) = U diag(1 / s) U^T,   y = X_c W.

y has identity covariance up to eps and is the whitening closest to x (Bell & Sejnowski 1997; Kessy et al.
2018). Cost per call: N F^2 (covariance and product) + F^3 (the eigendecomposition), against batch norm's N F.

Backward, with G = dL/dy and A = sym(X_c^T G) = dL/dW (symmetrised: W is a symmetric function of Sigma):

    dL/dSigma = U (K o (U^T A U)) U^T,   K_ij = (1/s_i - 1/s_j) / (s_i^2 - s_j^2) = -1 / (s_i s_j (s_i + s_j))

(the Daleckii-Krein formula for the matrix function t -> t^(-1/2); the closed form has no 0/0 where two
eigenvalues meet, and its diagonal is the derivative -1 / (2 s^3)), then

    dL/dX_c = G W + 2 X_c dL/dSigma / N,   dL/dx = dL/dX_c - mean_n dL/dX_c.

With `affine`, y' = gamma * y + beta per feature, as batch norm's affine map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ZCACache:
    xc: np.ndarray       # centred input (..., N, F)
    y: np.ndarray        # whitened output (..., N, F)
    U: np.ndarray        # eigenvectors of Sigma (..., F, F)
    s: np.ndarray        # sqrt of its eigenvalues (..., F)
    W: np.ndarray        # Sigma^(-1/2) (..., F, F)


def _t(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def zca_forward(x: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, ZCACache]:
    """y = (x - mu) Sigma^(-1/2) over the rows of each batch (..., N, F); float64 eigendecomposition."""
    x = np.asarray(x)
    n = x.shape[-2]
    xc = x - x.mean(axis=-2, keepdims=True)
    cov = (_t(xc) @ xc).astype(np.float64) / n
    cov += eps * np.eye(x.shape[-1])
    lam, U = np.linalg.eigh(cov)
    s = np.sqrt(np.maximum(lam, eps))
    W = (U / s[..., None, :]) @ _t(U)
    y = xc @ W.astype(x.dtype)
    return y, ZCACache(xc, y, U, s, W)


def zca_backward(g: np.ndarray, cache: ZCACache) -> np.ndarray:
    """dL/dx given g = dL/dy (see the module docstring)."""
    xc, U, s, W = cache.xc, cache.U, cache.s, cache.W
    n = xc.shape[-2]
    g64 = np.asarray(g, dtype=np.float64)
    A = _t(xc).astype(np.float64) @ g64
    A = 0.5 * (A + _t(A))
    K = -1.0 / (s[..., :, None] * s[..., None, :] * (s[..., :, None] + s[..., None, :]))
    dsigma = U @ (K * (_t(U) @ A @ U)) @ _t(U)
    dxc = g64 @ W + (2.0 / n) * (xc.astype(np.float64) @ dsigma)
    dx = dxc - dxc.mean(axis=-2, keepdims=True)
    return dx.astype(np.result_type(g, xc))
