"""Data sets: seeded, shaped and typed as documented; the sawtooth's pieces; the file loader and its errors."""

import sys

import numpy as np
import pandas as pd
import pytest

from dlbench.data import DATASETS, load_dataset_file, make_dataset, tent_map
from dlbench.errors import DlbenchError, UnknownName
from dlbench.experiments.teacher import relu_teacher

SYNTHETIC = [n for n in DATASETS if n != "digits"]
HANDED_IN = {"teacher": {"net": relu_teacher(8)}}   # what a data set needs from its caller


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_sets_are_seeded_and_shaped(name):
    extra = HANDED_IN.get(name, {})
    a = make_dataset(name, seed=3, n_train=200, n_test=50, **extra)
    b = make_dataset(name, seed=3, n_train=200, n_test=50, **extra)
    c = make_dataset(name, seed=4, n_train=200, n_test=50, **extra)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_train, c.X_train)
    steps = a.X_train.shape[1:-1]                           # (T,) for a sequence set, () otherwise
    assert a.X_train.shape == (200, *steps, a.n_features) and a.X_test.shape == (50, *steps, a.n_features)
    if a.is_sequence:
        assert a.lengths_train.shape == (200,) and a.lengths_test.shape == (50,)
        assert a.lengths_train.dtype == np.int64 and 1 <= a.lengths_train.min() <= a.lengths_train.max() <= steps[0]
        np.testing.assert_array_equal(a.lengths_train, b.lengths_train)
    else:
        assert a.lengths_train is None and a.lengths_test is None
    assert a.X_train.dtype == np.float32 and a.X_train.flags.c_contiguous
    assert np.isfinite(a.X_train).all()
    if a.task == "classification":
        assert a.y_train.dtype == np.int64 and a.y_train.shape == (200,)
        assert set(np.unique(a.y_train)) == set(range(a.n_classes)) and a.n_outputs == a.n_classes
    else:
        assert a.y_train.dtype == np.float32 and a.y_train.shape == (200, a.n_outputs) and a.n_classes == 0


def test_hyperparameters_shape_the_data():
    blobs = make_dataset("blobs", n_classes=5, dim=7, n_train=100, n_test=10)
    assert blobs.n_classes == 5 and blobs.n_features == 7 and blobs.y_train.max() == 4
    teacher = make_dataset("teacher", dim=5, outputs=2, n_train=300, n_test=300, net=relu_teacher(5, 2))
    assert teacher.X_train.shape == (300, 5) and teacher.n_outputs == 2
    with pytest.raises(DlbenchError, match="needs net="):
        make_dataset("teacher")
    y = np.concatenate([teacher.y_train, teacher.y_test])
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)  # standardised over the whole sample
    np.testing.assert_allclose(y.std(axis=0), 1, rtol=1e-4)
    xor = make_dataset("xor", n_train=400, n_test=1)
    np.testing.assert_array_equal(xor.y_train, (xor.X_train[:, 0] > 0) ^ (xor.X_train[:, 1] > 0))
    sine = make_dataset("sine", freq=2.0, n_train=50, n_test=1)
    np.testing.assert_allclose(sine.y_train, np.sin(4 * np.pi * sine.X_train), atol=1e-5)


def test_unknown_names_and_parameters():
    with pytest.raises(UnknownName, match="spirals"):
        make_dataset("mnist")
    with pytest.raises(DlbenchError, match="no parameter width; valid: turns, noise"):
        make_dataset("spirals", width=3)


def test_tent_map_values_and_pieces():
    np.testing.assert_array_equal(tent_map(np.array([0.0, 0.25, 0.5, 0.75, 1.0]), 1), [0, 0.5, 1, 0.5, 0])
    np.testing.assert_array_equal(tent_map(np.array([0.125, 0.25, 0.5]), 2), [0.5, 1, 0])
    for k in range(1, 8):
        x = np.linspace(0, 1, 2 ** (k + 3) + 1)  # dyadic grid: exact values, 8 points per piece
        slopes = np.diff(tent_map(x, k)) / np.diff(x)
        assert np.allclose(np.abs(slopes), 2**k)
        assert 1 + np.count_nonzero(np.diff(np.sign(slopes))) == 2**k
    saw = make_dataset("sawtooth", k=4, n_train=100, n_test=1)
    np.testing.assert_allclose(saw.y_train, tent_map(saw.X_train.astype(np.float64), 4), atol=2e-6)


def test_digits_needs_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DlbenchError, match="pip install scikit-learn"):
        make_dataset("digits")


def test_digits_with_scikit_learn():
    pytest.importorskip("sklearn")
    d = make_dataset("digits", seed=1)
    assert d.X_train.shape == (1437, 64) and d.X_test.shape == (360, 64) and d.n_classes == 10
    assert 0 <= d.X_train.min() and d.X_train.max() <= 1


def _frame():
    return pd.DataFrame({"a": [0.1, 0.2, 0.3, 0.4, 0.5], "b": [1, 2, 3, 4, 5], "label": ["x", "y", "x", "y", "y"]})


def test_load_npz_csv_parquet(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.integers(0, 3, 20)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    d = load_dataset_file(tmp_path / "d.npz", seed=1)
    assert d.task == "classification" and d.n_classes == 3 and d.X_train.shape == (16, 3) and d.X_test.shape == (4, 3)
    np.testing.assert_array_equal(np.sort(np.concatenate([d.y_train, d.y_test])), np.sort(y))
    np.savez(tmp_path / "r.npz", X=X, y=X[:, 0] * 2)
    r = load_dataset_file(tmp_path / "r.npz")
    assert r.task == "regression" and r.y_train.shape == (16, 1) and r.y_train.dtype == np.float32

    _frame().to_csv(tmp_path / "t.csv", index=False)
    _frame().to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        t = load_dataset_file(tmp_path / name, test_fraction=0.4)
        assert t.task == "classification" and t.n_classes == 2 and t.n_features == 2 and len(t.y_test) == 2
        assert t.X_train.dtype == np.float32 and t.y_train.dtype == np.int64
        with pytest.raises(DlbenchError, match="feature column 'label' is not numeric"):
            load_dataset_file(tmp_path / name, target="a")
    numeric = _frame().drop(columns="label")
    numeric.to_csv(tmp_path / "n.csv", index=False)
    by_a = load_dataset_file(tmp_path / "n.csv", target="a")
    assert by_a.task == "regression" and by_a.n_features == 1
    assert load_dataset_file(tmp_path / "n.csv", task="regression").task == "regression"
    assert load_dataset_file(tmp_path / "n.csv").n_classes == 5  # integer target column b


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


BAD_CSV = {
    "header only": ("a,b\n", "no rows"),
    "empty": ("", "no rows"),
    "one row": ("a,b\n1,0\n", "at least 2 rows"),
    "text feature": ("a,b\nx,0\ny,1\n", "feature column 'a' is not numeric"),
    "NaN feature": ("a,b\n1,0\n,1\n", "NaN or infinite feature value"),
    "missing label": ("a,b\n1,0\n2,\n", "target column 'b' has 1 missing value"),
    "one column": ("a\n1\n2\n", "at least one feature column"),
}


@pytest.mark.parametrize("case", BAD_CSV)
def test_bad_csv_files_give_one_line_errors(tmp_path, case):
    text, message = BAD_CSV[case]
    with pytest.raises(DlbenchError, match=message) as err:
        load_dataset_file(_write(tmp_path, "bad.csv", text))
    assert "\n" not in str(err.value)


def test_other_bad_inputs_give_one_line_errors(tmp_path):
    errors = []
    for call, message in [
        (lambda: load_dataset_file(tmp_path / "missing.csv"), "not found"),
        (lambda: load_dataset_file(_write(tmp_path, "d.txt", "1,2\n")), "unsupported data file type '.txt'"),
        (lambda: load_dataset_file(_write(tmp_path, "t.csv", "a,b\n1,0\n2,1\n"), target="c"),
         "no target column 'c'; columns: a, b"),
        (lambda: load_dataset_file(_write(tmp_path, "broken.parquet", "not parquet")), "cannot read"),
        (lambda: load_dataset_file(_write(tmp_path, "broken.npz", "not a zip")), "cannot read"),
    ]:
        with pytest.raises(DlbenchError, match=message) as err:
            call()
        errors.append(str(err.value))
    np.savez(tmp_path / "noy.npz", X=np.ones((3, 2)))
    np.savez(tmp_path / "short.npz", X=np.ones((3, 2)), y=np.ones(2))
    np.savez(tmp_path / "nan.npz", X=np.array([[1.0], [np.nan], [2.0]]), y=np.arange(3))
    np.savez(tmp_path / "empty.npz", X=np.ones((0, 2)), y=np.ones(0))
    for name, message in [("noy", "needs arrays 'X' and 'y'; found: X"), ("short", "X has 3 rows but y has 2"),
                          ("nan", "1 NaN or infinite feature value"), ("empty", "no rows")]:
        with pytest.raises(DlbenchError, match=message) as err:
            load_dataset_file(tmp_path / f"{name}.npz")
        errors.append(str(err.value))
    assert all("\n" not in e for e in errors)


def test_adding_sequences_hold_two_markers_and_their_sum():
    d = make_dataset("adding", seed=1, n_train=2000, n_test=10, min_length=6, max_length=12)
    X, y, L = d.X_train, d.y_train[:, 0], d.lengths_train
    assert X.shape == (2000, 12, 2) and d.n_features == 2 and d.n_outputs == 1
    assert set(np.unique(L)) == set(range(6, 13))
    valid = np.arange(12) < L[:, None]
    assert not X[~valid].any()                                          # zero padding
    assert ((X[..., 0] >= 0) & (X[..., 0] < 1)).all()
    markers = X[..., 1]
    np.testing.assert_array_equal(markers.sum(axis=1), 2)
    first, second = (np.argmax(markers, axis=1), 11 - np.argmax(markers[:, ::-1], axis=1))
    assert (first < L // 2).all() and (second >= L // 2).all() and (second < L).all()
    np.testing.assert_allclose(y, (X[..., 0] * markers).sum(axis=1), rtol=1e-6)
    assert abs(y.mean() - 1) < 0.03 and abs(y.var() - 1 / 6) < 0.02
    fixed = make_dataset("adding", n_train=50, n_test=1, min_length=7, max_length=7)
    assert (fixed.lengths_train == 7).all() and fixed.X_train.shape == (50, 7, 2)
    with pytest.raises(DlbenchError, match="max_length \\(3\\) is below min_length \\(5\\)"):
        make_dataset("adding", min_length=5, max_length=3)
    with pytest.raises(DlbenchError, match="min_length must be an integer >= 2"):
        make_dataset("adding", min_length=1)
