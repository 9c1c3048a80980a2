"""The results file: round trip, validation of foreign and damaged files, atomic writes."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import toy_experiment
from dlbench import results as results_mod
from dlbench.errors import DlbenchError, ResultsFileError
from dlbench.protocol import Judgement
from dlbench.results import CORE_COLUMNS, SCHEMA_VERSION, Recorder, read_results, write_results
from dlbench.runner import make_options, run_many
from dlbench.stats import Finding
from dlbench.timing import Timing


def _recorder() -> Recorder:
    rec = Recorder("demo")
    rec.metric("loss", [0.5, 0.25, 0.125], case={"opt": "adam", "lr": 0.01, "depth": 3, "norm": True},
               unit="", better="lower", seeds=[0, 1, 2])
    rec.curve("loss", np.linspace(1, 0, 50), case={"opt": "sgd", "lr": 0.1, "depth": 3}, seed=0)
    rec.timing("relu", Timing(np.array([1e-3, 1.1e-3]), loops=10, items=1e6, bytes=8e6), case={"n": 10**6})
    f = Finding("supported", 0.3, 0.2, 0.4, 6, "bootstrap", "effect 0.3")
    rec.verdict(Judgement("D4", "supported", f, "refuted", "supported at all 2 grid points", f.evidence),
                "a deep linear net does no better than least squares")
    return rec


def test_round_trip_rows_types_and_metadata(tmp_path):
    path = tmp_path / "r.parquet"
    written = write_results([_recorder()], {"fingerprint": {"numpy": "x"}, "seeds": [0, 1, 2]}, path)
    back = read_results(path)
    pd.testing.assert_frame_equal(written.rows, back.rows)
    assert back.meta["schema_version"] == SCHEMA_VERSION
    assert back.meta["fingerprint"] == {"numpy": "x"}
    rows = back.rows
    assert len(rows) == 3 + 50 + 2 + 1
    assert set(rows["kind"]) == {"metric", "curve", "timing", "claim"}
    schema = pq.read_schema(path)
    assert schema.field("p_lr").type == pa.float64()
    assert schema.field("p_depth").type == pa.int64()
    assert schema.field("p_opt").type == pa.string()
    assert schema.field("p_norm").type == pa.bool_()
    claim = back.claims.iloc[0]
    assert claim["verdict"] == "supported" and claim["claim"] == "D4"
    timing = rows[rows["kind"] == "timing"]
    assert list(timing["value"]) == [1e-3, 1.1e-3] and set(timing["bytes"]) == {8e6}
    assert rows.loc[rows["kind"] == "metric", "case"].iloc[0] == "opt=adam lr=0.01 depth=3 norm=True"


def test_file_opens_in_plain_pyarrow_and_pandas_without_dlbench(tmp_path):
    path = tmp_path / "r.parquet"
    write_results([_recorder()], {}, path)
    df = pd.read_parquet(path)
    assert {"experiment", "metric", "value", "unit", "better", "seed"} <= set(df.columns)
    meta = json.loads(pq.read_schema(path).metadata[b"dlbench"])
    assert meta["schema_version"] == SCHEMA_VERSION


def test_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "r.parquet"
    write_results([_recorder()], {}, path)
    with pytest.raises(DlbenchError, match="exists"):
        write_results([_recorder()], {}, path)
    write_results([_recorder()], {}, path, force=True)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "r.parquet"

    def broken(table, where, **kw):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(results_mod.pq, "write_table", broken)
    with pytest.raises(DlbenchError, match="cannot write .*disk full"):
        write_results([_recorder()], {}, path)
    assert list(tmp_path.iterdir()) == []


def test_wrong_column_type_is_damaged(tmp_path):
    path = tmp_path / "r.parquet"
    write_results([_recorder()], {}, path)
    table = pq.read_table(path)
    i = table.schema.get_field_index("value")
    bad = table.set_column(i, "value", pa.array(["x"] * len(table)))
    pq.write_table(bad.replace_schema_metadata(table.schema.metadata), path)
    with pytest.raises(ResultsFileError, match="value is string"):
        read_results(path)


def test_claim_basis_control_and_sensitivity_are_recorded(tmp_path):
    rec = Recorder("demo")
    f = Finding("supported", 2.0, 1.5, 2.5, 6, "bootstrap", "ratio 2")
    rec.verdict(Judgement("X1", "supported", f, "inconclusive", "supported at all 3 grid points", "e"), "measured")
    rec.verdict(Judgement("X2", "conditional", f, "refuted", "supported for n >= 8; inconclusive for n <= 4", "e"),
                "timed", basis="timing")
    rec.check("X1.identity", 1e-12, 1e-9, what="max |diff|", claim="X1")
    back = write_results([rec], {}, tmp_path / "r.parquet")
    claims = back.claims
    assert list(claims["basis"]) == ["measured", "timing"]
    assert list(claims["control"]) == ["inconclusive", "refuted"]
    assert list(claims["verdict"]) == ["supported", "conditional"]
    check = back.rows[back.rows["kind"] == "check"].iloc[0]
    assert (check["verdict"], check["claim"], check["threshold"]) == ("pass", "X1", 1e-9)


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_text("a,b\n1,2\n"), "not a Parquet file"),
    (lambda p: pq.write_table(pa.table({"a": [1, 2]}), p), "not a dlbench results file"),
    (lambda p: p.write_bytes(b"PAR1" + b"\0" * 64), "damaged"),
])
def test_bad_files_give_one_clear_error(tmp_path, make, message):
    path = tmp_path / "bad.parquet"
    make(path)
    with pytest.raises(ResultsFileError, match=message) as e:
        read_results(path)
    assert "\n" not in str(e.value)


def test_truncated_file_is_damaged(tmp_path):
    path = tmp_path / "r.parquet"
    write_results([_recorder()], {}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultsFileError, match="damaged|not a Parquet"):
        read_results(path)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.parquet"
    write_results([_recorder()], {}, path)
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"dlbench"])
    meta["schema_version"] = SCHEMA_VERSION + 1
    pq.write_table(table.replace_schema_metadata({b"dlbench": json.dumps(meta).encode()}), path)
    with pytest.raises(ResultsFileError, match="newer dlbench"):
        read_results(path)


def test_missing_core_column_is_damaged(tmp_path):
    path = tmp_path / "r.parquet"
    write_results([_recorder()], {}, path)
    table = pq.read_table(path)
    pq.write_table(table.drop(["value"]).replace_schema_metadata(table.schema.metadata), path)
    with pytest.raises(ResultsFileError, match="missing columns: value"):
        read_results(path)


def test_runner_records_fingerprint_bandwidth_and_seeds(tmp_path):
    opts = make_options(toy_experiment, quick=True)
    assert opts.steps == 10  # the quick value
    res = run_many([(toy_experiment, opts)], seed=7, seeds=4, quick=True, out=tmp_path / "t.parquet")
    back = read_results(res.path)
    assert back.meta["seeds"] == [7, 8, 9, 10]
    assert back.meta["options"]["toy"]["steps"] == 10
    assert "float32_dram" in back.meta["bandwidth"]
    assert back.meta["fingerprint"]["numpy"] == np.__version__
    loss = back.rows[(back.rows["kind"] == "metric") & (back.rows["p_opt"] == "a")]
    assert list(loss["seed"]) == [7, 8, 9, 10]


def test_same_seed_same_numbers():
    opts = make_options(toy_experiment, quick=True)
    a = run_many([(toy_experiment, opts)], seed=3, quick=True).rows
    b = run_many([(toy_experiment, opts)], seed=3, quick=True).rows
    keep = a["kind"] != "timing"
    np.testing.assert_array_equal(a.loc[keep, "value"], b.loc[keep, "value"])


# ----------------------------------------------------------------------------- files of schema version 1

SCHEMA1 = Path(__file__).parent / "data" / "schema1-init.parquet"   # init rows of a dlbench 0.1 suite file


def test_a_schema_1_file_opens_with_the_protocol_columns_empty():
    res = read_results(SCHEMA1)
    assert res.meta["schema_version"] == 1
    assert list(res.rows.columns[: len(CORE_COLUMNS)]) == list(CORE_COLUMNS)
    assert res.rows[["control", "sensitivity", "role", "host"]].isna().all().all()
    assert set(res.claims["claim"]) == {"I1", "I2", "I3", "I4", "I5"}


@pytest.mark.parametrize("command", [["show"], ["claims"], ["show", "--claims"]])
def test_show_and_claims_render_a_schema_1_file(command):
    from typer.testing import CliRunner

    from dlbench import cli

    r = CliRunner().invoke(cli.app, [*command, str(SCHEMA1), "--format", "markdown"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "I4" in r.output and "supported" in r.output


def test_compare_reads_a_schema_1_file_against_a_schema_2_file(tmp_path):
    from dlbench.compare import compare_files

    c = compare_files(SCHEMA1, SCHEMA1)
    assert c.exit_status == 0 and not c.claims["changed"].any()
    new = tmp_path / "new.parquet"
    write_results([_recorder()], {"seeds": [0, 1, 2]}, new)
    with pytest.raises(DlbenchError, match="no rows in common"):
        compare_files(SCHEMA1, new)


# ----------------------------------------------------------------------------- files that catch their corruption

@pytest.fixture(scope="module")
def intact(tmp_path_factory):
    path = tmp_path_factory.mktemp("intact") / "toy.parquet"
    opts = make_options(toy_experiment, quick=True)
    res = run_many([(toy_experiment, opts)], seeds=6, quick=True, out=path)
    return path, res.rows


def _corruptions(data: bytes):
    """(name, bytes): truncations, flipped bytes and zeroed runs, in data pages and in the footer."""
    n = len(data)
    for cut in (8, 64, n // 3, n // 2, n - 200, n - 9, n - 5, n - 1):
        yield f"truncated to {n - cut}", data[: n - cut]
    for frac in np.linspace(0.02, 0.995, 40):
        i = int(frac * n)
        yield f"byte {i} flipped", data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]
    for frac in np.linspace(0.5, 0.99, 30):
        i = int(frac * n)
        yield f"64 bytes zeroed at {i}", data[:i] + bytes(min(64, n - i)) + data[i + 64:]


def test_every_corrupted_copy_of_a_file_is_refused_in_one_line(intact, tmp_path):
    path, _ = intact
    data = path.read_bytes()
    cases = list(_corruptions(data))
    for name, bad in cases:
        copy = tmp_path / "copy.parquet"
        copy.write_bytes(bad)
        with pytest.raises(ResultsFileError) as e:
            read_results(copy)
        assert "\n" not in str(e.value) and str(copy) in str(e.value), name
    assert len(cases) == 78


def test_a_valid_parquet_file_whose_numbers_changed_is_refused(intact, tmp_path):
    path, _ = intact
    table = pq.read_table(path)
    values = table["value"].to_numpy(zero_copy_only=False).copy()
    values[0] *= 1.5
    edited = table.set_column(table.column_names.index("value"), "value", pa.array(values))
    pq.write_table(edited.replace_schema_metadata(table.schema.metadata), tmp_path / "edited.parquet")
    with pytest.raises(ResultsFileError, match="do not match the digest"):
        read_results(tmp_path / "edited.parquet")


def test_a_damaged_file_is_one_line_and_exit_2_in_show_claims_and_compare(intact, tmp_path):
    from typer.testing import CliRunner

    from dlbench import cli

    path, _ = intact
    data = path.read_bytes()
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(data[: len(data) // 2] + bytes(64) + data[len(data) // 2 + 64:])
    for args in (["show", str(bad)], ["claims", str(bad)], ["compare", str(path), str(bad)]):
        r = CliRunner().invoke(cli.app, args)
        assert r.exit_code == 2, (args, r.output)
        lines = [line for line in r.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "damaged" in lines[0] and str(bad) in lines[0], (args, r.output)
