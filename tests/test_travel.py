"""Results files that travelled through pandas, polars or Arrow tools open as before (schema)."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import toy_experiment
from dlbench import cli
from dlbench.errors import ResultsFileError
from dlbench.results import CORE_COLUMNS, META_KEY, read_results
from dlbench.runner import make_options, run_many

runner = CliRunner()


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A toy run with every kind of row: metric, curve, timing, grid, claim, check."""
    path = tmp_path_factory.mktemp("travel") / "toy.parquet"
    run_many([(toy_experiment, make_options(toy_experiment, True))], quick=True, seeds=3, out=path)
    return path


def with_dlbench_metadata(table: pa.Table, source) -> pa.Table:
    """`table` carrying the dlbench key of `source`, as a tool that keeps key-value metadata writes it."""
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = pq.read_schema(source).metadata[META_KEY]
    return table.replace_schema_metadata(meta)


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame):
    assert list(a.columns) == list(b.columns)
    for c in CORE_COLUMNS:
        assert a[c].dtype == b[c].dtype, c
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_pandas_round_trip_opens_as_before(original, tmp_path):
    df = pd.read_parquet(original)
    df.to_parquet(tmp_path / "pandas.parquet")
    travelled = pq.read_table(tmp_path / "pandas.parquet")
    # what pandas wrote: strings as large_string, integer columns with gaps as double
    assert travelled.schema.field("case").type == pa.large_string()
    assert travelled.schema.field("seed").type == pa.float64()
    pq.write_table(with_dlbench_metadata(travelled, original), tmp_path / "pandas.parquet")
    assert_same_rows(read_results(original).rows, read_results(tmp_path / "pandas.parquet").rows)


def test_a_pandas_index_column_is_dropped(original, tmp_path):
    df = pd.read_parquet(original)
    df.index = pd.Index(np.arange(len(df)))  # not a RangeIndex: pandas writes it as a column
    df.to_parquet(tmp_path / "indexed.parquet")
    travelled = pq.read_table(tmp_path / "indexed.parquet")
    assert "__index_level_0__" in travelled.column_names
    pq.write_table(with_dlbench_metadata(travelled, original), tmp_path / "indexed.parquet")
    rows = read_results(tmp_path / "indexed.parquet").rows
    assert "__index_level_0__" not in rows.columns
    assert_same_rows(read_results(original).rows, rows)


def test_a_file_whose_rows_changed_on_the_way_is_refused(original, tmp_path):
    df = pd.read_parquet(original)
    df[df["kind"] != "curve"].to_parquet(tmp_path / "some.parquet", index=False)
    pq.write_table(with_dlbench_metadata(pq.read_table(tmp_path / "some.parquet"), original),
                   tmp_path / "some.parquet")
    with pytest.raises(ResultsFileError, match="content does not match"):
        read_results(tmp_path / "some.parquet")


def test_large_string_and_dictionary_rewrite_opens_as_before(original, tmp_path):
    table = pq.read_table(original)
    fields = []
    for f in table.schema:
        if f.type == pa.string():
            # the experiment name dictionary-encoded (a pandas categorical), every other string large
            typ = pa.dictionary(pa.int32(), pa.string()) if f.name == "experiment" else pa.large_string()
            fields.append(pa.field(f.name, typ))
        else:
            fields.append(f)
    rewritten = table.cast(pa.schema(fields, metadata=table.schema.metadata))
    assert rewritten.schema.field("evidence").type == pa.large_string()
    pq.write_table(rewritten, tmp_path / "large.parquet")
    assert_same_rows(read_results(original).rows, read_results(tmp_path / "large.parquet").rows)


def test_narrower_integers_are_widened(original, tmp_path):
    table = pq.read_table(original)
    for name in ("loops", "n", "sample"):
        table = table.set_column(table.schema.get_field_index(name), name, table[name].cast(pa.int32()))
    pq.write_table(table, tmp_path / "narrow.parquet")
    assert_same_rows(read_results(original).rows, read_results(tmp_path / "narrow.parquet").rows)


def test_travelled_file_shows_and_compares_same(original, tmp_path):
    df = pd.read_parquet(original)
    df.to_parquet(tmp_path / "pandas.parquet")
    pq.write_table(with_dlbench_metadata(pq.read_table(tmp_path / "pandas.parquet"), original),
                   tmp_path / "pandas.parquet")
    r = runner.invoke(cli.app, ["show", str(tmp_path / "pandas.parquet"), "--claims"])
    assert r.exit_code == 0, r.output
    assert "T1" in r.output
    r = runner.invoke(cli.app, ["compare", str(original), str(tmp_path / "pandas.parquet"), "--format", "json",
                                "--fail-on", "quality,verdict"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("column, values, fragment", [
    ("seed", lambda n: pa.array([1.5] * n), "seed should hold whole numbers but holds 1.5"),
    ("value", lambda n: pa.array(["x"] * n), "value is string, not double"),
    ("n", lambda n: pa.array([2.0**60] * n), "n should hold whole numbers"),
    ("loops", lambda n: pa.array([1] * n, pa.int64()).cast(pa.timestamp("s")), "loops is timestamp"),
])
def test_truly_incompatible_columns_are_refused_in_one_line(original, tmp_path, column, values, fragment):
    table = pq.read_table(original)
    i = table.schema.get_field_index(column)
    bad = table.set_column(i, column, values(len(table)))
    pq.write_table(bad.replace_schema_metadata(table.schema.metadata), tmp_path / "bad.parquet")
    with pytest.raises(ResultsFileError, match="damaged") as e:
        read_results(tmp_path / "bad.parquet")
    assert fragment in str(e.value) and "\n" not in str(e.value)
    r = runner.invoke(cli.app, ["show", str(tmp_path / "bad.parquet")])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
