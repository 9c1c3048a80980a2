"""The timing harness, driven by a fake clock: calibration, warm-up, sample count."""

import numpy as np
import pytest

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


def test_copy_bandwidth_probe_reports_every_dtype_and_size():
    bw = copy_bandwidth(quick=True)
    assert set(bw) == {"float32_cache", "float32_dram", "float64_cache", "float64_dram"}
    assert all(v > 0 for v in bw.values())


def test_bandwidth_fraction_picks_cache_or_dram_by_working_set():
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

    ts = time_interleaved([call("a"), call("b")], items=[10, None], min_time=0.0, samples=3, warmup=1, clock=clock)
    assert [t.samples.shape for t in ts] == [(3,), (3,)] and ts[0].items == 10 and ts[1].items is None
    np.testing.assert_allclose(ts[0].samples, 1e-3)
    # warm-up and two calibrations per call, then one sample of each per round, in a shuffled order
    assert order[:6] == ["a", "a", "a", "b", "b", "b"]
    rounds = [sorted(order[6 + 2 * j:8 + 2 * j]) for j in range(3)]
    assert rounds == [["a", "b"]] * 3
    orders = {tuple(order[6 + 2 * j:8 + 2 * j]) for j in range(3)}
    order.clear()
    time_interleaved([call("a"), call("b")], min_time=0.0, samples=3, warmup=1, clock=clock)
    assert {tuple(order[6 + 2 * j:8 + 2 * j]) for j in range(3)} == orders     # the order is seeded


def test_interleaved_timing_rejects_mismatched_items():
    with pytest.raises(ValueError):
        time_interleaved([lambda: None], items=[1, 2], samples=1)
