"""Units on every executor: the same rows whatever runs them, nothing lost, timings alone, one-line errors."""

import concurrent.futures as cf
import dataclasses
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

import toy_experiment
import worker_experiment
from dlbench import cli, experiments
from dlbench.errors import DlbenchError, RunStopped
from dlbench.executor import (LocalPool, Unit, UnitCache, Workers, check_address, execute, run_unit,
                              unit_key)
from dlbench.experiments import init
from dlbench.experiments.base import Progress, parts_of
from dlbench.results import Recorder, build_table, concat_tables, read_results
from dlbench.runner import make_options, run_many

TESTS = Path(__file__).parent
# init at a few seconds a unit: what matters here is that its units give the same rows anywhere
INIT_SMALL = dict(depth=3, width=8, train_depth=3, train_width=4, steps=20, lrs="1e-2", schemes="xavier_uniform")


def comparable(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows every executor must give alike: all but timings and what rests on them, without run id and host."""
    keep = (rows["kind"] != "timing") & (rows["basis"] != "timing")
    return rows[keep].drop(columns=["run_id", "host"]).dropna(axis=1, how="all").reset_index(drop=True)


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(comparable(a), comparable(b))


def work(**values):
    return [(worker_experiment, make_options(worker_experiment, **values))]


def units_of(module, opts, base_seeds=(0,), seeds=3, timing=None):
    return [Unit(module.NAME, p.name, p.fn, opts, b, seeds, True, 1, p.timing) for b in base_seeds
            for p in parts_of(module, opts) if timing is None or p.timing == timing]


def assert_timings_alone(log: list[dict]) -> None:
    """No unit ran on a timing unit's host while it ran (start/stop as each unit recorded them)."""
    fresh = [u for u in log if not u["reused"] and u["start"] is not None]
    timed = [u for u in fresh if u["timing"]]
    assert timed
    for t in timed:
        for u in fresh:
            if u is not t and u["host"] == t["host"]:
                assert u["stop"] <= t["start"] or u["start"] >= t["stop"], (t, u)


@pytest.fixture(scope="module")
def cluster():
    """A Dask LocalCluster of two one-thread worker processes on 127.0.0.1 (nothing listens beyond it)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as c:
        yield c


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The worker experiment and the toy at two base seeds, in this process: the rows to match."""
    plan = work() + [(toy_experiment, make_options(toy_experiment, quick=True))]
    res = run_many(plan, seed=[0, 1000], quick=True, cache_dir=tmp_path_factory.mktemp("ref"))
    return plan, res


# ----------------------------------------------------------------------------- the same answer anywhere

def test_in_process_by_default(reference):
    _, res = reference
    assert res.meta["workers"] == "in this process"
    assert {u["pid"] for u in res.meta["unit_log"]} == {os.getpid()}
    assert res.meta["units"] == {"total": 14, "reused": 0, "failed": 0, "cache": res.meta["units"]["cache"]}
    assert_timings_alone(res.meta["unit_log"])


def test_two_local_workers_give_the_same_rows_and_verdicts(reference, tmp_path):
    plan, ref = reference
    res = run_many(plan, seed=[0, 1000], quick=True, workers=2, cache_dir=tmp_path)
    assert_same_rows(ref.rows, res.rows)
    assert res.meta["workers"] == "2 local processes"
    pids = {u["pid"] for u in res.meta["unit_log"] if not u["timing"]}
    assert os.getpid() not in pids and len(pids) == 2
    assert {u["pid"] for u in res.meta["unit_log"] if u["timing"]} == {os.getpid()}  # timings here, after
    assert_timings_alone(res.meta["unit_log"])
    assert not list(tmp_path.glob("*.parquet"))  # a run with every unit leaves no unit behind


def test_a_dask_cluster_gives_the_same_rows_and_verdicts(reference, cluster, tmp_path):
    plan, ref = reference
    res = run_many(plan, seed=[0, 1000], quick=True, scheduler=cluster.scheduler_address, cache_dir=tmp_path)
    assert_same_rows(ref.rows, res.rows)
    assert res.meta["workers"] == f"Dask scheduler {cluster.scheduler_address}"
    assert os.getpid() not in {u["pid"] for u in res.meta["unit_log"] if not u["timing"]}
    assert_timings_alone(res.meta["unit_log"])


def test_init_units_are_the_same_on_every_executor(cluster, tmp_path):
    opts = make_options(init, quick=True, **INIT_SMALL)
    units = units_of(init, opts, seeds=2, timing=False)
    tables = {}
    for name, workers in (("inline", Workers()), ("pool", LocalPool(2)),
                          ("dask", _dask(cluster.scheduler_address))):
        with workers:
            report = execute(units, workers, UnitCache(None))
        assert not report.failed, report.failed
        tables[name] = concat_tables([o.table for o in report.outcomes], "")
    assert tables["inline"].num_rows > 100
    assert tables["pool"].equals(tables["inline"]) and tables["dask"].equals(tables["inline"])


#: units of a wall-clock figure: a row in one of these outside the timing rows measures the machine's load
TIME_UNITS = {"s", "ms", "us", "ns", "1/s", "GB/s"}


@pytest.fixture(scope="module")
def optimizers_small():
    from dlbench.experiments import optimizers

    opts = make_options(optimizers, quick=True, surface="quadratic", optimizers="sgd,adam", all_claims=False)
    return [(optimizers, opts)]


def test_optimizers_rows_are_the_same_on_every_executor(optimizers_small, cluster, tmp_path):
    runs = [run_many(optimizers_small, seed=[0, 1000], quick=True, cache_dir=tmp_path / "a"),
            run_many(optimizers_small, seed=[0, 1000], quick=True, workers=2, cache_dir=tmp_path / "b"),
            run_many(optimizers_small, seed=[0, 1000], quick=True, scheduler=cluster.scheduler_address,
                     cache_dir=tmp_path / "c")]
    rows = [r.rows[~r.rows["unit"].isin(TIME_UNITS)] for r in runs]  # see the test below
    assert len(comparable(rows[0])) > 500
    assert_same_rows(rows[0], rows[1])
    assert_same_rows(rows[0], rows[2])
    assert [r.claims["verdict"].tolist() for r in runs[1:]] == [runs[0].claims["verdict"].tolist()] * 2


def test_wall_clock_figures_are_timing_rows(optimizers_small):
    rows = run_many(optimizers_small, seed=0, quick=True, cache_dir=False).rows
    timed = rows[rows["unit"].isin(TIME_UNITS)]
    bad = timed[(timed["kind"] != "timing") & (timed["basis"] != "timing")]
    assert bad.empty, bad[["experiment", "kind", "metric", "unit"]].drop_duplicates().to_string()


def _dask(address):
    from dlbench.executor import DaskCluster

    return DaskCluster(address)


def _overlaps(log_or_outcomes) -> list:
    """Pairs of units that ran at the same time in the same process."""
    runs = sorted((o.pid, o.start, o.stop) for o in log_or_outcomes)
    return [(a, b) for a, b in zip(runs, runs[1:]) if a[0] == b[0] and b[1] < a[2]]


def test_units_in_threads_of_one_process_run_one_after_the_other():
    # a Dask worker with two threads runs two units at once in one process: BLAS limits, warning filters
    # and the CPU clock are the process's, so the second waits for the first
    opts = make_options(init, quick=True, **INIT_SMALL)
    units = units_of(init, opts, seeds=2, timing=False)[:4]
    alone = [run_unit(u) for u in units]
    with cf.ThreadPoolExecutor(2) as pool:
        side_by_side = list(pool.map(run_unit, units))
    assert not _overlaps(side_by_side)
    for a, b in zip(alone, side_by_side):
        assert a.status == b.status == "ok" and a.table.equals(b.table)


def test_a_two_thread_dask_worker_that_joins_later_gives_the_same_rows(monkeypatch):
    distributed = pytest.importorskip("distributed")
    from dlbench.executor import DaskCluster

    opts = make_options(init, quick=True, **INIT_SMALL)
    units = units_of(init, opts, seeds=2, timing=False)
    ref = execute(units, Workers(), UnitCache(None))
    # the check at connection refuses it; a worker that joins after the check is not seen by it
    monkeypatch.setattr(DaskCluster, "_check_workers", lambda self: None)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=logging.ERROR) as two:
        with DaskCluster(two.scheduler_address) as workers:
            assert workers.capacity() == 1  # one process: one unit at a time
            report = execute(units, workers, UnitCache(None))
    assert not report.failed, report.failed
    assert not _overlaps(report.outcomes)
    for a, b in zip(ref.outcomes, report.outcomes):
        assert a.table.equals(b.table)


def test_a_tls_scheduler_takes_its_certificates_from_dask_s_configuration(tmp_path):
    distributed = pytest.importorskip("distributed")
    import dask
    from distributed.security import Security

    from dlbench.executor import DaskCluster

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl makes the test's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    c, k = str(cert), str(key)
    sec = Security(tls_ca_file=c, tls_scheduler_cert=c, tls_scheduler_key=k, tls_worker_cert=c, tls_worker_key=k,
                   tls_client_cert=c, tls_client_key=k, require_encryption=True)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  protocol="tls", security=sec, dashboard_address=None,
                                  silence_logs=logging.ERROR) as secure:
        address = secure.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        with pytest.raises(DlbenchError, match=r"cannot connect .*distributed\.comm\.tls\.ca-file"):
            DaskCluster(address, timeout=3)  # no certificates configured: one line naming the settings
        config = {"distributed.comm.tls.ca-file": c, "distributed.comm.tls.client.cert": c,
                  "distributed.comm.tls.client.key": k, "distributed.comm.require-encryption": True}
        with dask.config.set(config), DaskCluster(address) as workers:
            unit = units_of(worker_experiment, make_options(worker_experiment), timing=False)[0]
            report = execute([unit], workers, UnitCache(None))
    assert not report.failed and report.outcomes[0].table.equals(run_unit(unit).table)


def test_a_failed_handshake_gets_one_more_try_a_network_failure_none():
    from types import SimpleNamespace

    from dlbench.executor import DaskCluster

    def fake(failures):
        calls = []

        def client(address, **kw):
            calls.append(address)
            if len(calls) <= len(failures):
                raise failures[len(calls) - 1]
            return "client"
        return SimpleNamespace(Client=client), calls

    cluster = DaskCluster.__new__(DaskCluster)
    cluster.address = "tcp://127.0.0.1:1"
    module, calls = fake([AssertionError()])
    assert cluster._connect(module, 1.0) == "client" and len(calls) == 2
    module, calls = fake([AssertionError(), AssertionError()])
    with pytest.raises(AssertionError):
        cluster._connect(module, 1.0)
    assert len(calls) == 2
    module, calls = fake([OSError("refused")])
    with pytest.raises(OSError):
        cluster._connect(module, 1.0)
    assert len(calls) == 1  # the network's answer is final: no second wait


def test_rows_from_unit_tables_are_the_rows_of_one_table():
    recs = []
    for i, case in enumerate([{"a": 1, "b": "x"}, {"a": 1.5}, {"b": 2, "c": True}, {}]):
        r = Recorder("e", base_seed=i)
        r.metric("m", [i, i + 1], case=case)
        recs.append(r)
    whole = build_table(recs, "run")
    joined = concat_tables([build_table([r], "") for r in recs], "run")
    assert joined.schema == whole.schema
    assert joined.to_pylist() == whole.to_pylist()


# ----------------------------------------------------------------------------- nothing lost

def _kill_first_unit(mark: Path, killed: list, stop: threading.Event) -> None:
    while not stop.is_set():
        started = sorted(mark.iterdir())
        if started:
            pid = int(started[0].name.split("-")[-1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.02)


def _run_while_killing(tmp_path, **run) -> tuple:
    mark = tmp_path / "mark"
    mark.mkdir()
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=_kill_first_unit, args=(mark, killed, stop))
    killer.start()
    try:
        res = run_many(work(sleep=0.5, mark=str(mark)), seed=[0], quick=True, cache_dir=tmp_path / "units", **run)
    finally:
        stop.set()
        killer.join()
    return res, killed


def test_a_killed_local_worker_is_replaced_and_the_run_completes(reference, tmp_path):
    res, killed = _run_while_killing(tmp_path, workers=2)
    assert killed and killed[0] != os.getpid()
    assert res.meta["units"]["failed"] == 0
    assert max(u["runs"] for u in res.meta["unit_log"]) == 2  # the killed unit ran again
    ref = reference[1].rows
    assert_same_rows(ref[(ref["experiment"] == "work") & (ref["base_seed"] == 0) & (ref["kind"] != "claim")],
                     res.rows[res.rows["kind"] != "claim"])


def test_a_lost_dask_worker_is_replaced_and_the_run_completes(cluster, tmp_path):
    res, killed = _run_while_killing(tmp_path, scheduler=cluster.scheduler_address)
    assert killed
    assert res.meta["units"]["failed"] == 0
    assert set(res.claims["verdict"]) == {"supported"}
    cluster.wait_for_workers(2, timeout=60)


def test_a_lost_cluster_stops_the_run_in_one_line_and_another_resumes_it(reference, cluster, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr("dlbench.executor.CONNECT_TIMEOUT", 2.0)  # give up on the lost scheduler sooner
    cache = tmp_path / "units"
    lost = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                    dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)

    def close_after_two_units():
        while len(list(cache.glob("*.parquet"))) < 2:
            time.sleep(0.05)
        lost.close()

    closer = threading.Thread(target=close_after_two_units)
    closer.start()
    try:
        with pytest.raises(RunStopped) as stopped:
            run_many(work(sleep=1.5), seed=[0, 1000], quick=True, scheduler=lost.scheduler_address, cache_dir=cache)
    finally:
        closer.join()
    assert stopped.value.exit_code == 1
    assert str(stopped.value).startswith(f"lost the Dask scheduler {lost.scheduler_address}: cancelled ")
    kept = len(list(cache.glob("*.parquet")))
    assert kept >= 2
    res = run_many(work(sleep=1.5), seed=[0, 1000], quick=True, scheduler=cluster.scheduler_address, cache_dir=cache)
    assert res.meta["units"]["reused"] == kept
    ref = reference[1].rows
    assert_same_rows(ref[ref["experiment"] == "work"], res.rows)


def test_a_unit_that_fails_twice_is_named_and_the_others_are_kept(tmp_path):
    out = tmp_path / "run.parquet"
    res = run_many(work(fail="1"), seed=[0, 1000], quick=True, out=out, cache_dir=tmp_path / "units")
    back = read_results(out)
    failed = back.meta["failed_units"]
    assert [(f["part"], f["base_seed"]) for f in failed] == [("work.p1", 0), ("work.p1", 1000)]
    assert failed[0]["error"].startswith("ValueError: part 1 is told to fail (worker_experiment.py:")
    assert [u["runs"] for u in back.meta["unit_log"] if u["part"] == "work.p1"] == [2, 2]
    verdicts = back.claims.set_index("claim")
    assert verdicts.loc["W1", "verdict"] == "supported"  # the other parts are kept and judged
    assert verdicts.loc["W2", "verdict"] == "not run"
    assert "unit work.p1 at base seed 0 failed (ValueError: part 1 is told to fail" in verdicts.loc["W2", "evidence"]
    assert (back.rows["kind"] == "metric").sum() == 2 * 3 * 6  # three parts of four, two base seeds, six seeds
    # what finished stays for the same command, which reruns only the failed units
    again = run_many(work(fail="1"), seed=[0, 1000], quick=True, cache_dir=tmp_path / "units")
    assert again.meta["units"]["reused"] == 8 and again.meta["units"]["failed"] == 2
    assert res.meta["units"]["total"] == 10


def test_a_claim_whose_unit_failed_at_one_base_seed_is_inconclusive_and_says_why(tmp_path):
    res = run_many(work(fail="1@1000"), seed=[0, 1000], quick=True, cache_dir=tmp_path)
    w2 = res.claims.set_index("claim").loc["W2"]
    assert w2["verdict"] == "inconclusive"
    assert w2["evidence"].startswith("unit work.p1 at base seed 1000 failed (ValueError: part 1 is told to fail")
    assert "(measured without it: supported)" in w2["evidence"]
    assert res.claims.set_index("claim").loc["W1", "verdict"] == "supported"


def _in_order(monkeypatch, units, cache):
    """(report, the indices of `units` in the order this process ran them): the order is recorded as each unit
    starts, not read off the clock."""
    from dlbench import executor

    ran = []

    def recording(unit):
        ran.append(units.index(unit))
        return executor_run_unit(unit)

    executor_run_unit = executor.run_unit
    monkeypatch.setattr(executor, "run_unit", recording)
    return execute(units, Workers(), cache), ran


def test_the_fan_out_hands_out_the_longest_parts_first_as_they_took_last_time(tmp_path, monkeypatch):
    cache = UnitCache(tmp_path)
    opts = make_options(worker_experiment)
    units = units_of(worker_experiment, opts, timing=False)
    cache.discard(execute(units, Workers(), cache).keys)  # as the runner does once the file is written
    took = cache.durations()
    assert sorted(took) == sorted(unit_key(u, any_seed=True) for u in units) and all(v >= 0 for v in took.values())
    cache.remember({unit_key(u, any_seed=True): float(i) for i, u in enumerate(units)})  # the last the longest
    report, order = _in_order(monkeypatch, units, cache)
    assert report.reused == 0
    assert order == list(range(len(units)))[::-1]
    cache.discard(report.keys)
    (tmp_path / "durations.json").write_text("{not json")
    monkeypatch.undo()
    report, order = _in_order(monkeypatch, units, cache)
    assert order == list(range(len(units)))  # plan order
    assert sum("durations.json: damaged" in n for n in report.notes) == 1
    assert sorted(cache.durations()) == sorted(took)  # rewritten whole


def test_parts_never_timed_go_heavy_ones_first_then_in_plan_order(tmp_path, monkeypatch):
    opts = make_options(worker_experiment)
    units = units_of(worker_experiment, opts, timing=False)
    units[2] = dataclasses.replace(units[2], heavy=10.0)
    units[0] = dataclasses.replace(units[0], heavy=30.0)
    _, order = _in_order(monkeypatch, units, UnitCache(None))  # no cache: no durations known
    assert order == [0, 2] + [i for i in range(len(units)) if i not in (0, 2)]


def test_the_longest_parts_of_the_suite_are_marked_heavy():
    heavy = {p.name: p.heavy for m in map(experiments.load, experiments.names())
             for p in parts_of(m, make_options(m, **getattr(m, "SUITE_OPTIONS", {}))) if p.heavy}
    assert set(heavy) == {"depth.D7-D8", "recurrent.N13", "recurrent.N13.hidden16", "init.I5", "optimizers.O10"}
    assert max(heavy, key=heavy.get) == "depth.D7-D8"  # the longest of them all is handed out first


@pytest.mark.parametrize("name", experiments.names())
def test_every_part_of_every_experiment_can_be_sent_to_a_worker(name):
    # A part that pickles only by a name that is not its own (a closure, a decorated function) runs in
    # this process and fails on every worker.
    module = experiments.load(name)
    for opts in (make_options(module, quick=True), make_options(module, **getattr(module, "SUITE_OPTIONS", {}))):
        for part in parts_of(module, opts):
            unit = Unit(name, part.name, part.fn, opts, 0, 2, True, 1, part.timing)
            again = pickle.loads(pickle.dumps(unit))
            assert again.part == part.name and unit_key(again) == unit_key(unit)


def test_a_part_that_times_kernels_must_say_so():
    unit = Unit("toy", "toy.timing", toy_experiment.time_relu, make_options(toy_experiment), 0, 2, True, 1, False)
    o = run_unit(unit)
    assert o.status == "error" and "records timings but is not a timing part" in o.error
    assert run_unit(dataclasses.replace(unit, timing=True)).status == "ok"


def test_a_unit_that_kills_its_worker_every_time_fails_alone(reference, tmp_path):
    res = run_many(work(die="2"), seed=[0], quick=True, workers=2, cache_dir=tmp_path)
    failed = res.meta["failed_units"]
    assert [(f["part"], f["base_seed"]) for f in failed] == [("work.p2", 0)]
    assert failed[0]["error"].startswith("its worker died (BrokenProcessPool")
    assert {u["part"] for u in res.meta["unit_log"] if u["error"]} == {"work.p2"}  # no neighbour blamed
    assert set(res.claims["verdict"]) == {"supported"}


class _InterruptAfter(Progress):
    """Ctrl-C arriving once `n` units are done."""

    def __init__(self, n):
        self.n = n

    def units(self, total, workers, done=0):
        import contextlib

        @contextlib.contextmanager
        def cm():
            def update(**counts):
                if counts.get("done", 0) >= self.n:
                    raise KeyboardInterrupt

            yield update

        return cm()


@pytest.mark.parametrize("workers", [1, 2])
def test_an_interrupted_run_resumes_with_only_the_unfinished_units(reference, tmp_path, workers):
    cache, out = tmp_path / "units", tmp_path / "run.parquet"
    plan = work()
    with pytest.raises(RunStopped) as stopped:
        run_many(plan, seed=[0, 1000], quick=True, out=out, workers=workers, cache_dir=cache,
                 progress=_InterruptAfter(3))
    assert stopped.value.exit_code == 130
    assert str(stopped.value).startswith("interrupted: nothing written; cancelled ")
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))  # no results file, not even half of one
    kept = len(list(cache.glob("*.parquet")))
    assert kept >= 3
    res = run_many(plan, seed=[0, 1000], quick=True, out=out, workers=workers, cache_dir=cache)
    log = res.meta["unit_log"]
    assert res.meta["units"]["reused"] == kept == sum(u["reused"] for u in log)
    assert all(u["runs"] == (0 if u["reused"] else 1) for u in log)
    ref = reference[1].rows
    assert_same_rows(ref[ref["experiment"] == "work"], read_results(out).rows)
    assert not list(cache.glob("*.parquet"))


def test_ctrl_c_stops_a_pool_in_one_line_and_the_same_command_reuses_what_finished(tmp_path):
    cache, out, mark = tmp_path / "units", tmp_path / "run.parquet", tmp_path / "mark"
    mark.mkdir()
    script = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import typer, worker_experiment; "
              "from dlbench import cli; app = typer.Typer(cls=cli.OneLineGroup); "
              "app.command('work')(cli._experiment_command(worker_experiment)); app.command('show')(cli.show); app()")
    args = [sys.executable, "-c", script, "work", "--quick", "--seed", "0,1000", "--workers", "2", "--out", str(out),
            "--mark", str(mark), "--sleep", "2", "--parts", "2", "--format", "json"]
    env = {**os.environ, "DLBENCH_CACHE": str(cache)}
    # a shell that starts the tests in the background has SIGINT ignored, and a child inherits that: a
    # terminal's dlbench has it at its default, so this one does too
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for _ in range(1200):  # wait (at most 1200 naps of 50 ms) until two units are in the cache
        if len(list(cache.glob("*.parquet"))) >= 2 or proc.poll() is not None:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().count("\n") == 0 and err.startswith("dlbench: interrupted: nothing written; cancelled "), err
    assert "reuses them" in err and not out.exists()
    kept = len(list(cache.glob("*.parquet")))
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"dlbench: reused {kept} of 6 units" in done.stderr
    assert read_results(out).meta["units"]["reused"] == kept


def test_a_damaged_or_foreign_cache_file_is_named_and_recomputed(reference, tmp_path):
    cache = UnitCache(tmp_path)
    opts = make_options(worker_experiment)
    units = units_of(worker_experiment, opts, timing=False)
    first = execute(units, Workers(), cache)
    paths = [cache.path(unit_key(u)) for u in units]
    assert all(p.exists() for p in paths)
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[: len(data) // 2])                       # truncated
    flipped = bytearray(paths[1].read_bytes())
    flipped[40] ^= 0xFF                                                 # a flipped byte in a data page
    paths[1].write_bytes(bytes(flipped))
    paths[3].write_bytes(paths[2].read_bytes())                        # another unit's file under this name
    cache.notes.clear()
    again = execute(units, Workers(), cache)
    named = " ".join(cache.notes)
    for p in (paths[0], paths[1], paths[3]):
        assert str(p) in named
    assert "another unit" in named and "damaged" in named
    assert again.reused == 1
    for a, b in zip(first.outcomes, again.outcomes):
        assert a.table.equals(b.table)


def test_a_cache_file_is_parquet_named_by_a_key_of_version_code_options_and_seeds(tmp_path):
    cache = UnitCache(tmp_path / "units")
    unit = units_of(worker_experiment, make_options(worker_experiment), timing=False)[0]
    key = unit_key(unit)
    outcome = run_unit(unit)
    assert outcome.status == "ok" and outcome.pid == os.getpid()
    cache.store(unit, key, outcome)
    path = cache.path(key)
    assert path.read_bytes()[:4] == b"PAR1" and pq.read_metadata(path).num_rows == outcome.table.num_rows
    assert (tmp_path / "units").stat().st_mode & 0o077 == 0  # the folder dlbench made is its owner's alone
    assert unit_key(unit) == key
    other = [units_of(worker_experiment, make_options(worker_experiment, parts=3), timing=False)[0],
             units_of(worker_experiment, make_options(worker_experiment), base_seeds=(1,), timing=False)[0],
             units_of(worker_experiment, make_options(worker_experiment), seeds=4, timing=False)[0]]
    assert len({key, *map(unit_key, other)}) == 4


# ----------------------------------------------------------------------------- one line for bad input

runner = CliRunner()


@pytest.fixture(scope="module")
def toy_app():
    app = typer.Typer(cls=cli.OneLineGroup)
    app.command("toy", help=toy_experiment.HELP)(cli._experiment_command(toy_experiment))
    app.command("init", help=init.HELP)(cli._experiment_command(init))
    return app


def one_line_error(app, *args, env=None):
    r = runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and r.output.startswith("dlbench: error: "), r.output
    return r.output


def test_scheduler_without_dask_is_one_line_saying_what_to_install(toy_app, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    out = one_line_error(toy_app, "toy", "--quick", "--no-save", "--scheduler", "tcp://127.0.0.1:8786")
    assert "pip install 'dlbench[dist]'" in out
    out = one_line_error(toy_app, "toy", "--quick", "--no-save", env={"DLBENCH_SCHEDULER": "tcp://127.0.0.1:8786"})
    assert "pip install 'dlbench[dist]'" in out


@pytest.mark.parametrize("args, words", [
    (("--workers", "0"), "--workers 0: must be between 1 and"),
    (("--workers", "many"), "expected a whole number or auto"),
    (("--workers", "999"), "cores this machine has"),
    (("--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"), "contradict"),
    (("--scheduler", "ucx://127.0.0.1:8786"), "tcp:// or tls://"),
    (("--scheduler", "tcp://127.0.0.1"), "give the scheduler's port"),
    (("--size", "huge"), "--size"),
    (("--size", "paper"), "contradict"),
])
def test_bad_executor_options_are_one_line(toy_app, args, words):
    assert words in one_line_error(toy_app, "toy", "--quick", "--no-save", *args)


def test_an_unreachable_scheduler_is_one_line():
    pytest.importorskip("distributed")
    from dlbench.executor import DaskCluster

    with pytest.raises(DlbenchError, match=r"^--scheduler tcp://127.0.0.1:9: cannot connect"):
        DaskCluster("tcp://127.0.0.1:9", timeout=1)


def test_dlbench_never_starts_a_scheduler_of_its_own():
    import dlbench

    for path in Path(dlbench.__file__).parent.rglob("*.py"):
        text = path.read_text()
        for start in ("LocalCluster", "distributed.Scheduler", "Scheduler(", "SpecCluster", "dask scheduler"):
            assert start not in text, f"{path.name} mentions {start}: dlbench only connects to a scheduler"


def test_addresses():
    assert check_address("127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert check_address("tls://node-1.example:8786") == "tls://node-1.example:8786"
    assert check_address("tcp://[::1]:8786") == "tcp://[::1]:8786"


# ----------------------------------------------------------------------------- sizes

def test_paper_size_takes_each_option_s_paper_value():
    assert make_options(toy_experiment, size="paper").steps == 1000
    assert make_options(toy_experiment, size="paper", steps=7).steps == 7
    assert make_options(toy_experiment, quick=True).steps == 10
    paper = make_options(init, size="paper")
    assert (paper.width, paper.train_depth, paper.train_width, paper.steps) == (1000, 30, 128, 3000)
    assert paper.depth == make_options(init).depth  # no paper value: the default
    with pytest.raises(DlbenchError, match="contradict"):
        make_options(toy_experiment, quick=True, size="paper")


def test_an_experiment_without_a_paper_size_says_so():
    from dlbench.experiments.base import has_size, option

    bare = type(sys)("bare")
    bare.NAME, bare.HELP, bare.CLAIMS = "bare", "No paper size.", {}
    bare.Options = dataclasses.make_dataclass("Options", [("x", int, option(1, help="x"))])
    bare.parts = lambda opts: []
    assert has_size(toy_experiment, "paper") and has_size(init, "paper")
    assert not has_size(bare, "paper") and has_size(bare, "default") and has_size(bare, "quick")
    app = typer.Typer(cls=cli.OneLineGroup)
    app.command("bare")(cli._experiment_command(bare))
    app.command("other")(cli._experiment_command(toy_experiment))
    assert "bare has no paper size yet" in one_line_error(app, "bare", "--size", "paper", "--no-save")
