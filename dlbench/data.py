"""Seeded data sets (synthetic and scikit-learn's digits) and a loader for the user's own .npz/.csv/.parquet.

Features are float32 (n, d), or (n, T, d) for a sequence set, whose sequences are padded with zeros to T steps
and whose lengths_train / lengths_test (n,) int64 give each one's valid steps. Classification labels are
int64 (n,) in 0 .. n_classes-1; regression targets are float32 (n, k). Train and test sets are drawn from the
same distribution with one generator, np.random.default_rng(seed), so a seed fixes both.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.registry import Registry

CLASSIFICATION, REGRESSION = "classification", "regression"


@dataclass(frozen=True)
class Dataset:
    """A train/test split: X_* (n, d) float32, or (n, T, d) zero-padded sequences with lengths_* (n,) int64;
    y_* int64 (n,) labels or float32 (n, k) targets."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: str                 # "classification" or "regression"
    n_classes: int = 0        # 0 for regression
    hyper: dict = field(default_factory=dict)
    lengths_train: np.ndarray | None = None    # sequence sets: valid steps of each sequence, 1 .. T
    lengths_test: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        """Features per sample, or per step of a sequence."""
        return self.X_train.shape[-1]

    @property
    def is_sequence(self) -> bool:
        return self.X_train.ndim == 3

    @property
    def n_outputs(self) -> int:
        """Output width a net needs: n_classes for classification, k for regression."""
        return self.n_classes if self.task == CLASSIFICATION else self.y_train.shape[1]


@dataclass(frozen=True)
class DatasetMaker:
    """A registry entry: fn(rng, n, **hyper) -> (X, y) draws n samples; defaults holds fn's hyperparameters."""

    name: str
    fn: Callable
    task: str
    description: str
    n_train: int
    n_test: int
    n_classes: int          # 0 for regression; a hyperparameter n_classes overrides it
    defaults: dict


DATASETS: Registry[DatasetMaker] = Registry("data set")


def _register(name: str, task: str, n_classes: int = 0, n_train: int = 1000, n_test: int = 1000):
    def wrap(fn):
        defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        DATASETS.add(name, DatasetMaker(name, fn, task, inspect.getdoc(fn) or "", n_train, n_test, n_classes,
                                        defaults))
        return fn
    return wrap


def _balanced_labels(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % n_classes).astype(np.int64)


@_register("spirals", CLASSIFICATION, 2)
def spirals(rng: np.random.Generator, n: int, turns: float = 1.5, noise: float = 0.05):
    """Two interleaved spirals in 2-D: class c at radius r ~ U(0, 1), angle 2 pi turns r + pi c, plus N(0, noise^2)."""
    y = _balanced_labels(rng, n, 2)
    r = rng.uniform(0.0, 1.0, n)
    angle = 2 * np.pi * turns * r + np.pi * y
    X = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1) + noise * rng.standard_normal((n, 2))
    return X, y


@_register("checkerboard", CLASSIFICATION, 2)
def checkerboard(rng: np.random.Generator, n: int, cells: int = 4, noise: float = 0.0):
    """x ~ U(-1, 1)^2 on a cells x cells board; label = parity of the cell; then N(0, noise^2) added to x."""
    X = rng.uniform(-1.0, 1.0, (n, 2))
    cell = np.minimum(np.floor((X + 1) * (cells / 2)), cells - 1).astype(np.int64)
    y = (cell[:, 0] + cell[:, 1]) % 2
    return X + noise * rng.standard_normal((n, 2)), y


@_register("xor", CLASSIFICATION, 2)
def xor(rng: np.random.Generator, n: int, noise: float = 0.0):
    """XOR of the signs of x ~ U(-1, 1)^2 (the 2 x 2 checkerboard)."""
    return checkerboard(rng, n, cells=2, noise=noise)


@_register("blobs", CLASSIFICATION, 3)
def blobs(rng: np.random.Generator, n: int, n_classes: int = 3, dim: int = 2, std: float = 1.0, spread: float = 5.0):
    """Gaussian clusters: centres ~ U(-spread, spread)^dim, one per class; x = centre + N(0, std^2 I)."""
    centres = rng.uniform(-spread, spread, (n_classes, dim))
    y = _balanced_labels(rng, n, n_classes)
    return centres[y] + std * rng.standard_normal((n, dim)), y


@_register("sine", REGRESSION)
def sine(rng: np.random.Generator, n: int, freq: float = 1.0, noise: float = 0.0):
    """y = sin(2 pi freq x) + N(0, noise^2), x ~ U(-1, 1)."""
    X = rng.uniform(-1.0, 1.0, (n, 1))
    return X, np.sin(2 * np.pi * freq * X) + noise * rng.standard_normal((n, 1))


def tent_map(x: np.ndarray, k: int) -> np.ndarray:
    """Telgarsky's sawtooth: the tent map t(x) = 2x (x < 1/2), 2 - 2x (x >= 1/2) on [0, 1], composed k times.

    t^k has 2^k linear pieces (2^(k-1) teeth, slopes +-2^k); a net needs depth ~k or width ~2^k to fit it
    (Telgarsky, "Benefits of depth in neural networks", COLT 2016). t(x) = 1 - |2x - 1|.
    """
    x = np.array(x, copy=True)
    for _ in range(k):
        x *= 2
        x -= 1
        np.abs(x, out=x)
        np.subtract(1, x, out=x)
    return x


@_register("sawtooth", REGRESSION)
def sawtooth(rng: np.random.Generator, n: int, k: int = 3, noise: float = 0.0):
    """y = tent_map(x, k) + N(0, noise^2), x ~ U(0, 1): 2^k linear pieces (Telgarsky 2016)."""
    X = rng.uniform(0.0, 1.0, (n, 1))
    return X, tent_map(X, k) + noise * rng.standard_normal((n, 1))


@_register("teacher", REGRESSION)
def teacher(rng: np.random.Generator, n: int, dim: int = 8, outputs: int = 1, noise: float = 0.0, net=None):
    """y = f(x) + N(0, noise^2) for a teacher function f handed in as `net` (x (n, dim) float64 -> (n, outputs)),
    x ~ N(0, I_dim); f's outputs are standardised to mean 0, std 1 over the sample. The teacher is the
    caller's choice (`dlbench.experiments.teacher.relu_teacher` builds a random relu net)."""
    if net is None or not callable(net):
        raise DlbenchError("data set 'teacher' needs net=, the teacher function of x (n, dim) -> (n, outputs)")
    X = rng.standard_normal((n, dim))
    f = np.asarray(net(X), dtype=np.float64).reshape(n, outputs)
    f = (f - f.mean(axis=0)) / np.where(f.std(axis=0) > 0, f.std(axis=0), 1.0)
    return X, f + noise * rng.standard_normal((n, outputs))


@_register("digits", CLASSIFICATION, 10, n_train=1437, n_test=360)
def digits(rng: np.random.Generator, n: int):
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), pixels scaled to [0, 1], shuffled."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DlbenchError("data set 'digits' needs scikit-learn: pip install scikit-learn") from None
    bunch = load_digits()
    if n > len(bunch.target):
        raise DlbenchError(f"data set 'digits' has {len(bunch.target)} samples; asked for {n}")
    order = rng.permutation(len(bunch.target))[:n]
    return bunch.data[order] / 16.0, bunch.target[order].astype(np.int64)


@_register("adding", REGRESSION)
def adding(rng: np.random.Generator, n: int, min_length: int = 10, max_length: int = 50):
    """The adding problem (Hochreiter & Schmidhuber 1997): sequences of length L ~ U{min_length .. max_length},
    zero-padded to T = max_length steps of 2 features (v_t, m_t): v_t ~ U(0, 1); the marker m_t is 1 at two
    steps, one uniform in [0, L // 2) and one in [L // 2, L), and 0 elsewhere. Target: the sum of the two marked
    values (mean 1, variance 1/6, so always answering 1 scores mse 1/6). min_length = max_length: one length."""
    for key, v in (("min_length", min_length), ("max_length", max_length)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
            raise DlbenchError(f"data set 'adding': {key} must be an integer >= 2, got {v!r}")
    if max_length < min_length:
        raise DlbenchError(f"data set 'adding': max_length ({max_length}) is below min_length ({min_length})")
    lengths = rng.integers(min_length, max_length + 1, n)
    values = rng.uniform(0.0, 1.0, (n, max_length))
    half = lengths // 2
    first = np.floor(rng.uniform(0.0, 1.0, n) * half).astype(np.int64)
    second = half + np.floor(rng.uniform(0.0, 1.0, n) * (lengths - half)).astype(np.int64)
    values[np.arange(max_length) >= lengths[:, None]] = 0.0
    markers = np.zeros((n, max_length))
    rows = np.arange(n)
    markers[rows, first] = markers[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1), y[:, None], lengths


def _finish(name: str, task: str, X: np.ndarray, y: np.ndarray, n_train: int, hyper: dict,
            n_classes: int | None = None, lengths: np.ndarray | None = None) -> Dataset:
    X = np.ascontiguousarray(X, dtype=np.float32)
    if task == CLASSIFICATION:
        y = np.asarray(y, dtype=np.int64)
        n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    else:
        y = np.ascontiguousarray(np.asarray(y, dtype=np.float32).reshape(len(y), -1))
        n_classes = 0
    split = (None, None) if lengths is None else (lengths[:n_train], lengths[n_train:])
    return Dataset(name, X[:n_train], y[:n_train], X[n_train:], y[n_train:], task, n_classes, hyper, *split)


def make_dataset(name: str, seed: int = 0, n_train: int | None = None, n_test: int | None = None,
                 **hyper) -> Dataset:
    """Draw data set `name` (see DATASETS) with np.random.default_rng(seed): n_train + n_test samples, split.

    hyper overrides the maker's keyword defaults; an unknown one raises DlbenchError.
    """
    maker = DATASETS[name]
    unknown = sorted(set(hyper) - set(maker.defaults))
    if unknown:
        valid = ", ".join(maker.defaults) or "none"
        raise DlbenchError(f"data set {name!r} has no parameter {', '.join(unknown)}; valid: {valid}")
    n_train = maker.n_train if n_train is None else int(n_train)
    n_test = maker.n_test if n_test is None else int(n_test)
    if n_train < 1 or n_test < 0:
        raise DlbenchError(f"data set sizes must be n_train >= 1 and n_test >= 0, got {n_train} and {n_test}")
    full = {**maker.defaults, **hyper}
    X, y, *lengths = maker.fn(np.random.default_rng(seed), n_train + n_test, **full)
    lengths = np.asarray(lengths[0], dtype=np.int64) if lengths else None
    return _finish(name, maker.task, X, y, n_train, full, full.get("n_classes", maker.n_classes), lengths)


FILE_SUFFIXES = (".npz", ".csv", ".parquet")


def _read_table(path: Path):
    import pandas as pd

    try:
        if path.suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DlbenchError(f"{path}: no rows") from None
    except Exception as exc:  # any parser failure is the file's fault, reported in one line
        raise DlbenchError(f"cannot read {path}: {' '.join(str(exc).split())}") from None


def _table_arrays(path: Path, target: str | None):
    import pandas as pd

    df = _read_table(path)
    if df.shape[1] < 2:
        raise DlbenchError(f"{path}: needs at least one feature column and a target column, "
                           f"found {df.shape[1]} column(s)")
    columns = [str(c) for c in df.columns]
    df.columns = columns
    if target is None:
        target = columns[-1]
    elif target not in columns:
        raise DlbenchError(f"{path}: no target column {target!r}; columns: {', '.join(columns)}")
    if len(df) == 0:
        raise DlbenchError(f"{path}: no rows")
    features = [c for c in columns if c != target]
    for c in features:
        if not pd.api.types.is_numeric_dtype(df[c]):
            raise DlbenchError(f"{path}: feature column {c!r} is not numeric ({df[c].dtype})")
    y_col = df[target]
    if y_col.isna().any():
        raise DlbenchError(f"{path}: target column {target!r} has {int(y_col.isna().sum())} missing value(s)")
    y = y_col.to_numpy()
    if not pd.api.types.is_numeric_dtype(y_col):
        y = y.astype(str)
    return df[features].to_numpy(dtype=np.float64, na_value=np.nan), y, features


def _npz_arrays(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise DlbenchError(f"cannot read {path}: {' '.join(str(exc).split())}") from None
    if "X" not in arrays or "y" not in arrays:
        raise DlbenchError(f"{path}: a .npz needs arrays 'X' and 'y'; found: {', '.join(arrays) or 'none'}")
    X, y = arrays["X"], arrays["y"]
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or y.ndim not in (1, 2):
        raise DlbenchError(f"{path}: X must be (samples, features) and y (samples,) or (samples, k); "
                           f"got X {X.shape}, y {y.shape}")
    if len(X) != len(y):
        raise DlbenchError(f"{path}: X has {len(X)} rows but y has {len(y)}")
    if len(X) == 0:
        raise DlbenchError(f"{path}: no rows")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DlbenchError(f"{path}: X is not numeric ({X.dtype})")
    return X.astype(np.float64), y, [f"x{i}" for i in range(X.shape[1])]


def load_dataset_file(path: str | Path, target: str | None = None, *, task: str | None = None,
                      test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Read a user's data set: .npz with arrays X (n, d) and y (n,) or (n, k); or .csv / .parquet with numeric
    feature columns and a target column (`target`, default the last column).

    task: "classification" or "regression"; by default, a float target is regression and anything else
    (integers, bools, strings) classification, whose labels map to 0 .. C-1 in sorted order. The rows are
    shuffled with np.random.default_rng(seed) and round(test_fraction * n) of them (at least 1) form the test
    set. Every problem with the file raises DlbenchError with a one-line message.
    """
    path = Path(path)
    if path.suffix.lower() not in FILE_SUFFIXES:
        suffix = path.suffix or "(none)"
        raise DlbenchError(f"{path}: unsupported data file type {suffix!r}; use .npz, .csv or .parquet")
    if not path.is_file():
        raise DlbenchError(f"data file not found: {path}")
    if task not in (None, CLASSIFICATION, REGRESSION):
        raise DlbenchError(f"task must be {CLASSIFICATION!r} or {REGRESSION!r}, got {task!r}")
    if not 0 < test_fraction < 1:
        raise DlbenchError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    if path.suffix.lower() == ".npz":
        if target is not None:
            raise DlbenchError(f"{path}: target names a column of a .csv or .parquet; a .npz uses its array 'y'")
        X, y, features = _npz_arrays(path)
    else:
        X, y, features = _table_arrays(path, target)
    bad = ~np.isfinite(X)
    if bad.any():
        col = features[int(np.nonzero(bad.any(axis=0))[0][0])]
        raise DlbenchError(f"{path}: {int(bad.sum())} NaN or infinite feature value(s), first in column {col!r}")
    if len(X) < 2:
        raise DlbenchError(f"{path}: needs at least 2 rows to split into train and test, found {len(X)}")
    if task is None:
        task = REGRESSION if np.issubdtype(y.dtype, np.floating) else CLASSIFICATION
    if task == CLASSIFICATION:
        if y.ndim != 1:
            raise DlbenchError(f"{path}: classification needs one label per row, got y {y.shape}")
        classes, y = np.unique(y, return_inverse=True)
        n_classes = len(classes)
    else:
        if not np.issubdtype(y.dtype, np.number):
            raise DlbenchError(f"{path}: a regression target must be numeric, got {y.dtype}")
        if not np.isfinite(y).all():
            raise DlbenchError(f"{path}: NaN or infinite target value(s)")
        n_classes = None
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = min(max(1, round(test_fraction * len(X))), len(X) - 1)
    return _finish(path.stem, task, X[order], y[order], len(X) - n_test, {"path": str(path)}, n_classes)
