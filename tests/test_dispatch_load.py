"""The chain kernels' load rule: serial builds while other processes keep cores busy."""

import math
import time

import numpy as np
import pytest

from collapse_sim._kernels import _dispatch


@pytest.fixture
def counters(monkeypatch):
    """Feed _LoadWatch synthetic CPU counters: (wall, machine busy, own) seconds."""
    monkeypatch.setattr(_dispatch, "BUSY_CORES", 0.5)
    monkeypatch.setattr(_dispatch, "LOAD_INTERVAL", 0.0)
    monkeypatch.setattr(_dispatch, "FIRST_WINDOW", 0.0)
    feed = []
    monkeypatch.setattr(_dispatch, "_cpu_counters", lambda: feed.pop(0))
    return feed


def test_other_processes_busy_cores_switch_to_serial(counters):
    watch = _dispatch._LoadWatch()
    # the first job reads twice (FIRST_WINDOW apart; here 1 s): the machine was busy 1.9
    # core-seconds, 1.8 of them ours: others used 0.1 cores
    counters.extend([(0.0, 0.0, 0.0), (1.0, 1.9, 1.8)])
    assert not watch.others_busy()
    assert counters == []
    # next second: machine busy 1.9 more, ours 1.0 more: others used 0.9 cores
    counters.append((2.0, 3.8, 2.8))
    assert watch.others_busy()
    # others exactly at the threshold count as busy; just below do not
    counters.append((3.0, 4.8, 3.3))
    assert watch.others_busy()
    counters.append((4.0, 5.7, 3.9))
    assert not watch.others_busy()


def test_the_first_job_sees_load_at_once(counters):
    """Without an earlier reading the first parallel-sized job reads a short window
    itself: a busy machine makes it serial from the start."""
    watch = _dispatch._LoadWatch()
    counters.extend([(0.0, 0.0, 0.0), (0.03, 0.05, 0.01)])  # others: 0.04 s in 0.03 s
    assert watch.others_busy()
    idle = _dispatch._LoadWatch()
    counters.extend([(0.0, 0.0, 0.0), (0.03, 0.03, 0.03)])  # all of it ours
    assert not idle.others_busy()


def test_readings_are_cached_between_intervals(counters, monkeypatch):
    monkeypatch.setattr(_dispatch, "LOAD_INTERVAL", 3600.0)
    watch = _dispatch._LoadWatch()
    counters.extend([(time.monotonic(), 0.0, 0.0), (time.monotonic(), 0.0, 0.0)])
    assert not watch.others_busy()
    assert counters == []
    assert not watch.others_busy()  # within the interval: no new reading (none is fed)


def test_without_proc_stat_the_rule_is_off(monkeypatch):
    monkeypatch.setattr(_dispatch, "BUSY_CORES", 0.5)
    monkeypatch.setattr(_dispatch, "_cpu_counters", lambda: None)
    assert not _dispatch._LoadWatch().others_busy()


def test_the_rule_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(_dispatch, "BUSY_CORES", math.inf)
    monkeypatch.setattr(_dispatch, "_cpu_counters", lambda: pytest.fail("read the counters"))
    assert not _dispatch._LoadWatch().others_busy()


def test_real_counters_are_plausible():
    sample = _dispatch._cpu_counters()
    if sample is None:
        pytest.skip("no /proc/stat here")
    wall, busy, own = sample
    assert busy >= 0 and own >= 0 and np.isfinite(wall)


def test_busy_machine_runs_the_serial_build(monkeypatch):
    calls = []

    class Fake:
        parallel = staticmethod(lambda *a: calls.append("parallel"))
        serial = staticmethod(lambda *a: calls.append("serial"))

    kernel = _dispatch.ChainKernel.__new__(_dispatch.ChainKernel)
    kernel.parallel, kernel.serial = Fake.parallel, Fake.serial
    big = np.zeros(_dispatch.PARALLEL_MIN_WORK)
    monkeypatch.setattr(_dispatch._LOAD, "others_busy", lambda: False)
    kernel(big)
    monkeypatch.setattr(_dispatch._LOAD, "others_busy", lambda: True)
    kernel(big)
    kernel(big[:10])
    assert calls == ["parallel", "serial", "serial"]
