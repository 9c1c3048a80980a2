"""The timing harness, driven by a fake clock: calibration, warm-up, sample count."""

import numpy as np
import pytest

import contextlib

from dlbench import timing
from dlbench.timing import bandwidth_fraction, copy_bandwidth, time_interleaved, time_kernel


class FakeClock:
    """Advances by `cost` seconds each time the timed function runs."""

    def __init__(self, cost: float):
        self.now, self.cost, self.calls = 0.0, cost, 0

    def __call__(self) -> float:
        return self.now

    def kernel(self):
        self.calls += 1
        self.now += self.cost


def test_calibrates_loops_so_each_sample_lasts_min_time():
    clock = FakeClock(cost=1e-4)
    t = time_kernel(clock.kernel, min_time=0.02, samples=5, warmup=3, clock=clock)
    assert t.loops * 1e-4 >= 0.02
    assert t.loops * 1e-4 < 0.02 * 12  # never overshoots by more than one growth step
    assert t.samples.shape == (5,)
    np.testing.assert_allclose(t.samples, 1e-4)


def test_warmup_calls_run_before_timing():
    clock = FakeClock(cost=1.0)  # slower than min_time: one loop per sample
    t = time_kernel(clock.kernel, min_time=0.5, samples=4, warmup=3, clock=clock)
    assert t.loops == 1
    assert clock.calls == 3 + 1 + 4  # warm-up, one calibration run, four samples


def test_throughput_derived_from_items_and_bytes():
    clock = FakeClock(cost=2e-3)
    t = time_kernel(clock.kernel, items=1000, bytes=8000, min_time=0.0, samples=3, clock=clock)
    assert t.median == pytest.approx(2e-3)
    assert t.items_per_s == pytest.approx(5e5)
    assert t.gbps == pytest.approx(8000 / 2e-3 / 1e9)


def test_calls_exactly_the_given_function_with_its_arguments():
    seen = []
    time_kernel(lambda a, b=None: seen.append((a, b)), 1, b=2, min_time=0, samples=1, warmup=0)
    assert set(seen) == {(1, 2)}


def test_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        time_kernel(lambda: None, samples=0)


def test_copy_bandwidth_probe_reports_every_dtype_and_level():
    bw = copy_bandwidth(quick=True)
    assert set(bw) == {f"{d}_{level}" for d in ("float32", "float64") for level in ("cache", "llc", "dram")}
    assert all(v > 0 for v in bw.values())


def test_probe_working_sets_sit_inside_their_level():
    sizes = timing.cache_sizes()
    assert 0 < sizes["cache"] < sizes["llc"]
    for level in timing.LEVELS:
        assert timing.working_set_level(timing.probe_working_set(level)) == level


def test_working_set_levels_follow_the_cache_sizes(monkeypatch):
    monkeypatch.setattr(timing, "cache_sizes", lambda: {"cache": 1000, "llc": 100_000})
    assert [timing.working_set_level(b) for b in (None, 10, 1000, 1001, 100_000, 100_001)] == [
        "cache", "cache", "cache", "llc", "llc", "dram"]


def test_cache_sizes_read_from_sysfs_layout(tmp_path):
    for i, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"),
                                             (3, "Unified", "32768K")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(kind + "\n")
        (d / "size").write_text(size + "\n")
    assert timing._read_cache_sizes(tmp_path) == {1: 48 * 1024, 2: 2**20, 3: 32 * 2**20}


def test_bandwidth_fraction_picks_the_level_of_the_working_set(monkeypatch):
    monkeypatch.setattr(timing, "cache_sizes", lambda: {"cache": 2**20, "llc": 32 * 2**20})
    bw = {"float32_cache": 200.0, "float32_llc": 100.0, "float32_dram": 40.0}
    assert bandwidth_fraction(20.0, 1e3, bw) == pytest.approx(0.1)
    assert bandwidth_fraction(20.0, 16e6, bw) == pytest.approx(0.2)   # 16 MB: the last-level cache
    assert bandwidth_fraction(20.0, 1e9, bw) == pytest.approx(0.5)
    assert bandwidth_fraction(None, 1e3, bw) is None


def test_bandwidth_fraction_of_files_without_a_last_level_probe():
    bw = {"float32_cache": 100.0, "float32_dram": 40.0}
    assert bandwidth_fraction(20.0, 1e3, bw) == pytest.approx(0.2)
    assert bandwidth_fraction(20.0, 1e9, bw) == pytest.approx(0.5)
    assert bandwidth_fraction(None, 1e3, bw) is None


def test_interleaved_timing_takes_one_sample_of_each_call_in_turn():
    order = []
    clock = FakeClock(cost=1e-3)

    def call(name):
        def run():
            order.append(name)
            clock.kernel()
        return run

    ts = time_interleaved({"a": call("a"), "b": call("b")}, items={"a": 10}, min_time=0.0, samples=3, warmup=1,
                          clock=clock)
    assert [t.samples.shape for t in ts.values()] == [(3,), (3,)] and ts["a"].items == 10 and ts["b"].items is None
    np.testing.assert_allclose(ts["a"].samples, 1e-3)
    # warm-up and two calibrations per call, then per round a warm-up call and one sample of each, shuffled
    assert order[:6] == ["a", "a", "a", "b", "b", "b"]
    rounds = [order[6 + 4 * j:10 + 4 * j] for j in range(3)]
    assert all(r[0] == r[1] and r[2] == r[3] and sorted({r[0], r[2]}) == ["a", "b"] for r in rounds)
    orders = {tuple(r[::2]) for r in rounds}
    order.clear()
    time_interleaved({"a": call("a"), "b": call("b")}, min_time=0.0, samples=3, warmup=1, clock=clock)
    assert {tuple(order[6 + 4 * j:10 + 4 * j:2]) for j in range(3)} == orders     # the order is seeded


def test_interleaved_timing_rejects_bad_settings():
    with pytest.raises(ValueError):
        time_interleaved({"a": lambda: None}, samples=0)


def test_interleaved_timing_gives_every_implementation_the_same_samples_and_warmup():
    clock = FakeClock(cost=0.0)
    calls = {"a": 0, "b": 0}
    entered = []

    def impl(name, cost):
        def fn():
            calls[name] += 1
            clock.now += cost
        return fn

    @contextlib.contextmanager
    def ctx(name):
        entered.append(name)
        yield

    t = time_interleaved({"a": impl("a", 1e-3), "b": impl("b", 4e-3)},
                         contexts={"b": lambda: ctx("b")}, min_time=0.01, samples=5, warmup=2, clock=clock)
    assert set(t) == {"a", "b"}
    assert t["a"].samples.shape == t["b"].samples.shape == (5,)
    np.testing.assert_allclose(t["a"].samples, 1e-3)
    np.testing.assert_allclose(t["b"].samples, 4e-3)
    assert t["a"].loops * 1e-3 >= 0.01 and t["b"].loops * 4e-3 >= 0.01
    for name in calls:  # per sample: a warm-up call and the calibrated loops (after two calibrations)
        assert calls[name] >= 5 * (1 + t[name].loops)
    assert entered == ["b"] * 6                                       # calibration, then five samples
