"""Big results: metric subsets, float32 files, uncompressed streamed writes, memory-mapped
loads, the old compressed files, the size estimate and its warning, to_frame subsets."""

import inspect
import json
import os
import re
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import collapse_sim as cs
from collapse_sim import _io, results
from collapse_sim._io import atomic_write

#: Round to nearest: |fl32(x) - x| <= 2**-24 |x| for |x| in float32's normal range.
F32_RTOL = 2.0**-24


@pytest.fixture(scope="module")
def sim():
    return cs.simulate(cs.Gaussian(mean=0.0, var=2.0), cs.GaussianFit(), n_samples=10,
                       generations=7, chains=5, seed=1, record_models=True)


def _synthetic(rows=11, chains=6, seed=0):
    """A Simulation of random values with the awkward ones: inf, -inf, NaN, 0, tiny, huge."""
    rng = np.random.default_rng(seed)
    a = np.exp(rng.normal(0.0, 5.0, size=(rows, chains)))  # magnitudes 1e-15 .. 1e15
    a[1, 0], a[1, 1], a[1, 2], a[2, 0] = np.inf, -np.inf, np.nan, 0.0
    b = -rng.random((rows, chains))
    return cs.Simulation({"a": a, "b": b}, {"truth": {"type": "Synthetic"}})


def test_default_save_is_uncompressed_aligned_and_round_trips(sim, tmp_path):
    path = sim.save(tmp_path / "run.npz")
    with zipfile.ZipFile(path) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    back = cs.Simulation.load(path)
    assert back.config == sim.config and list(back.metrics) == list(sim.metrics)
    for name, arr in sim.metrics.items():
        np.testing.assert_array_equal(back.metrics[name], arr)
        assert back.metrics[name].dtype == np.float64
    np.testing.assert_array_equal(back.models["cov"], sim.models["cov"])
    with np.load(path) as plain:  # an ordinary npz for numpy
        np.testing.assert_array_equal(plain["metric__w2"], sim.metrics["w2"])


def test_metric_subsets_on_save_and_load(sim, tmp_path):
    path = sim.save(tmp_path / "part.npz", metrics=["w2", "variance"], models=False)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["__meta__.npy", "metric__variance.npy",
                                              "metric__w2.npy"]
    back = cs.Simulation.load(path)
    assert list(back.metrics) == ["w2", "variance"] and back.models is None
    assert back.config == sim.config  # still the whole run's description
    one = cs.Simulation.load(sim.save(tmp_path / "all.npz"), metrics="kl", models=False)
    assert list(one.metrics) == ["kl"] and one.models is None
    np.testing.assert_array_equal(one.metrics["kl"], sim.metrics["kl"])
    with pytest.raises(ValueError, match=r"metrics must be among the metrics .*part.npz.*"
                                         r"\['nope'\]"):
        cs.Simulation.load(path, metrics=["w2", "nope"])
    with pytest.raises(ValueError, match="metrics must be among the metrics this run"):
        sim.save(tmp_path / "x.npz", metrics="nope")
    with pytest.raises(ValueError, match="at least one"):
        sim.save(tmp_path / "x.npz", metrics=[])
    with pytest.raises(ValueError, match="repeat"):
        sim.save(tmp_path / "x.npz", metrics=["w2", "w2"])
    with pytest.raises(TypeError, match="metrics must hold metric names"):
        sim.save(tmp_path / "x.npz", metrics=[1])
    assert not (tmp_path / "x.npz").exists()


def test_float32_round_trip_within_documented_precision(tmp_path):
    sim = _synthetic()
    path = sim.save(tmp_path / "f32.npz", dtype="float32")
    back = cs.Simulation.load(path)
    a, b = sim.metrics["a"], back.metrics["a"]
    assert b.dtype == np.float32 and back.metrics["b"].dtype == np.float32
    assert _metric_bytes(path) < 0.6 * _metric_bytes(sim.save(tmp_path / "f64.npz"))
    finite = np.isfinite(a)
    np.testing.assert_allclose(b[finite], a[finite], rtol=F32_RTOL, atol=0)
    assert b[1, 0] == np.inf and b[1, 1] == -np.inf and b[2, 0] == 0.0
    np.testing.assert_array_equal(np.isnan(b), np.isnan(a))  # NaN stays, none is made
    # the bound is tight: some value is rounded by more than a quarter of it
    nonzero = finite & (a != 0)
    assert np.max(np.abs(b[nonzero] / a[nonzero] - 1)) > F32_RTOL / 4


def _metric_bytes(path):
    with zipfile.ZipFile(path) as archive:
        return sum(i.file_size for i in archive.infolist() if i.filename.startswith("metric"))


def test_float32_per_metric_and_invalid_types(tmp_path):
    sim = _synthetic()
    back = cs.Simulation.load(sim.save(tmp_path / "mix.npz", dtype={"b": np.float32}))
    assert back.metrics["a"].dtype == np.float64 and back.metrics["b"].dtype == np.float32
    for bad in ("float16", "int32", "nonsense", 3):
        with pytest.raises(ValueError, match="dtype must be None, 'float32' or 'float64'"):
            sim.save(tmp_path / "bad.npz", dtype=bad)
    with pytest.raises(ValueError, match="dtype's keys must be metrics being saved"):
        sim.save(tmp_path / "bad.npz", dtype={"c": "float32"})


@pytest.mark.parametrize("value", [1e39, -1e300, 1e-39, -1e-200])
def test_float32_refuses_values_it_cannot_hold_and_keeps_the_old_file(tmp_path, value):
    sim = _synthetic()
    path = sim.save(tmp_path / "run.npz")
    before = path.read_bytes()
    sim.metrics["b"][3, 4] = value  # in the second metric: the first one is written
    with pytest.raises(ValueError, match=re.escape(f"metric 'b' holds {value:.6g}, outside")):
        sim.save(path, dtype="float32")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["run.npz"]  # no temporary file left behind
    sim.save(path, dtype={"a": "float32"})  # b in float64 is fine


def test_compressed_files_round_trip_and_are_not_mapped(sim, tmp_path):
    path = sim.save(tmp_path / "z.npz", compress=True)
    with zipfile.ZipFile(path) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    with pytest.warns(UserWarning, match=r"are compressed and cannot be memory-mapped"):
        back = cs.Simulation.load(path, mmap=True)
    assert not isinstance(back.metrics["w2"], np.memmap)
    np.testing.assert_array_equal(back.metrics["w2"], sim.metrics["w2"])
    with pytest.raises(TypeError, match="compress must be True or False"):
        sim.save(path, compress="yes")


def _save_as_before(sim, path):
    """The save of format 1 before this change, verbatim: one compressed npz."""
    arrays = {f"metric__{k}": v for k, v in sim.metrics.items()}
    arrays.update({f"model__{k}": v for k, v in sim.models.items()})
    arrays["__meta__"] = np.array(json.dumps({"format": results._FORMAT, "config": sim.config}))
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
    return path


def test_files_of_the_previous_save_still_load(sim, tmp_path):
    path = _save_as_before(sim, tmp_path / "old.npz")
    for kwargs in ({}, {"metrics": ["variance"]}):
        back = cs.Simulation.load(path, **kwargs)
        for name in back.metrics:
            np.testing.assert_array_equal(back.metrics[name], sim.metrics[name])
        np.testing.assert_array_equal(back.models["mean"], sim.models["mean"])
    assert results._FORMAT == "collapse_sim.Simulation/1"  # new files: same layout


def test_new_files_load_with_the_previous_reader(sim, tmp_path):
    # the previous load: np.load of every entry (its checks are read_npz's, unchanged)
    path = sim.save(tmp_path / "new.npz", dtype="float32", metrics=["w2"])
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["__meta__"]))
        assert meta["format"] == results._FORMAT
        np.testing.assert_allclose(data["metric__w2"], sim.metrics["w2"], rtol=F32_RTOL)


def test_an_error_mid_write_leaves_the_old_file_or_none(sim, tmp_path, monkeypatch):
    path = sim.save(tmp_path / "run.npz")
    before = path.read_bytes()
    real = _io._chunks
    calls = []

    def crash_in_third_array(arr, dtype):  # two entries written, the third's header
        calls.append(1)
        yield from real(arr, dtype) if len(calls) < 3 else []
        if len(calls) >= 3:
            raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(_io, "_chunks", crash_in_third_array)
    with pytest.raises(KeyboardInterrupt):
        sim.save(path)
    assert path.read_bytes() == before
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        sim.save(tmp_path / "new.npz")
    assert sorted(os.listdir(tmp_path)) == ["run.npz"]


def test_memory_mapped_load(sim, tmp_path):
    path = sim.save(tmp_path / "run.npz")
    mapped = cs.Simulation.load(path, mmap=True)
    for name, arr in sim.metrics.items():
        m = mapped.metrics[name]
        assert isinstance(m, np.memmap) and not m.flags.writeable
        assert m.ctypes.data % _io.ALIGN == 0  # maps start on a page: data aligned
        np.testing.assert_array_equal(m, arr)
    assert isinstance(mapped.models["cov"], np.memmap)
    np.testing.assert_array_equal(mapped.models["cov"], sim.models["cov"])
    with pytest.raises(ValueError, match="read-only"):
        mapped.metrics["w2"][0, 0] = 1.0
    np.testing.assert_array_equal(mapped.quantiles("w2").to_numpy(),
                                  sim.quantiles("w2").to_numpy())
    # saving over the mapped file replaces it; the map keeps the old one
    sim.save(path, metrics="w2", dtype="float32")
    np.testing.assert_array_equal(mapped.metrics["variance"], sim.metrics["variance"])
    again = cs.Simulation.load(path, mmap=True)
    assert again.metrics["w2"].dtype == np.float32
    # and a mapped result saves (the arrays stream from the map)
    copy = cs.Simulation.load(mapped.save(tmp_path / "copy.npz"))
    np.testing.assert_array_equal(copy.metrics["kl"], sim.metrics["kl"])


def test_uncompressed_entries_start_at_aligned_offsets(sim, tmp_path):
    path = sim.save(tmp_path / "run.npz")
    with open(path, "rb") as fh, zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename == "__meta__.npy":
                continue
            m = _io._map_entry(path, info, *_header(archive, info))
            assert m.offset % _io.ALIGN == 0, info.filename
            fh.seek(m.offset)
            assert fh.read(16) == np.ascontiguousarray(m).tobytes()[:16]


def _header(archive, info):
    with archive.open(info) as fh:
        np.lib.format.read_magic(fh)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    return shape, fortran, dtype, int(np.prod(shape)) * dtype.itemsize


@pytest.mark.parametrize("mmap", [False, True])
def test_an_altered_data_byte_is_reported_as_damage_unless_mapped(tmp_path, mmap):
    # uncompressed entries are read straight into the array: their CRC-32 is still checked
    # (entries over 4 KiB: the zip reader that checks the headers reads small ones whole)
    rng = np.random.default_rng(0)
    sim = cs.Simulation({k: rng.random((11, 1000)) for k in ("variance", "w2")}, {})
    path = sim.save(tmp_path / "run.npz")
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("metric__w2.npy")
        m = _io._map_entry(path, info, *_header(archive, info))
    raw = bytearray(path.read_bytes())
    raw[m.offset + 9] ^= 0x01
    path.write_bytes(bytes(raw))
    del m
    if mmap:  # documented: a map reads nothing, so it checks nothing
        back = cs.Simulation.load(path, mmap=True)
        assert not np.array_equal(back.metrics["w2"], sim.metrics["w2"])
    else:
        with pytest.raises(ValueError, match=r"run\.npz is damaged \(entry metric__w2\.npy\)"
                                             r".*CRC"):
            cs.Simulation.load(path)
        cs.Simulation.load(path, metrics="variance")  # the other entries are intact


@pytest.mark.parametrize("where", [None, 9, 40_000, 87_999])
def test_the_overlapped_read_and_checksum_of_a_big_entry(tmp_path, monkeypatch, where):
    # big entries are read piece by piece while a thread checksums the pieces read: shrink
    # "big" to 1 KiB and a piece to 3000 B (not a divisor of the 88000 B array) so that this
    # path runs; a flipped byte in the first, a middle or the last piece is damage
    monkeypatch.setattr(_io, "OVERLAP_BYTES", 1024)
    monkeypatch.setattr(_io, "READ_CHUNK_BYTES", 3000)
    rng = np.random.default_rng(1)
    sim = cs.Simulation({k: rng.random((11, 1000)) for k in ("variance", "w2")}, {})
    path = sim.save(tmp_path / "run.npz")
    if where is None:
        back = cs.Simulation.load(path)
        for k in sim.metrics:
            np.testing.assert_array_equal(back.metrics[k], sim.metrics[k])
        return
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("metric__w2.npy")
        m = _io._map_entry(path, info, *_header(archive, info))
    offset = m.offset
    del m
    raw = bytearray(path.read_bytes())
    raw[offset + where] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"run\.npz is damaged \(entry metric__w2\.npy\).*CRC"):
        cs.Simulation.load(path)


def test_a_truncated_file_is_refused_when_mapped(sim, tmp_path):
    path = sim.save(tmp_path / "run.npz")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"run\.npz"):
        cs.Simulation.load(path, mmap=True)


def test_save_streams_and_load_allocates_the_arrays_once(tmp_path, monkeypatch):
    # three 8 MB metrics, written 1 MiB at a time: a whole-array copy or conversion
    # would raise the traced peak by >= 8 MB (float32: 4 MB); loading allocates each
    # array once (numpy reads an npz entry in 2 MiB pieces into the final array)
    monkeypatch.setattr(_io, "WRITE_CHUNK_BYTES", 2**20)
    rng = np.random.default_rng(0)
    big = cs.Simulation({k: rng.random((1000, 1000)) for k in "abc"}, {})
    tracemalloc.start()
    try:
        for dtype in (None, "float32"):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            big.save(tmp_path / "big.npz", dtype=dtype)
            assert tracemalloc.get_traced_memory()[1] - base < 3.5 * 2**20, dtype
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        back = cs.Simulation.load(tmp_path / "big.npz")
        peak = tracemalloc.get_traced_memory()[1] - base
        assert peak < 3 * 4e6 + 4 * 2**20, peak  # three float32 arrays + read buffers
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        mapped = cs.Simulation.load(big.save(tmp_path / "big64.npz"), mmap=True)
        assert tracemalloc.get_traced_memory()[1] - base < 2**20  # nothing read
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(back.metrics["c"], big.metrics["c"], rtol=F32_RTOL)
    np.testing.assert_array_equal(mapped.metrics["c"], big.metrics["c"])


def test_to_frame_subsets_and_shared_memory(sim):
    full = sim.to_frame()
    assert len(full) == 8 * 5 and full["generation"].dtype == np.int32
    part = sim.to_frame(metrics=["w2"], generations=[2, 7])
    assert list(part.columns) == ["generation", "chain", "w2"] and len(part) == 2 * 5
    row = part[(part.generation == 7) & (part.chain == 3)]
    assert row["w2"].item() == sim.metrics["w2"][7, 3]
    shared = sim.to_frame("variance", copy=False)
    assert np.shares_memory(shared["variance"].to_numpy(), sim.metrics["variance"])
    with pytest.raises(ValueError, match="read-only"):  # an edit cannot reach the result
        shared.loc[0, "variance"] = -1.0
    assert not np.shares_memory(full["variance"].to_numpy(), sim.metrics["variance"])
    full.loc[0, "variance"] = -1.0
    assert sim.metrics["variance"][0, 0] == 2.0
    with pytest.raises(ValueError, match="generations must lie in"):
        sim.to_frame(generations=[8])
    with pytest.raises(ValueError, match="metrics must be among"):
        sim.to_frame(metrics="nope")


def test_estimate_bytes():
    assert cs.estimate_bytes(1000, 100_000, 6) == 1001 * 100_000 * 6 * 8
    assert cs.estimate_bytes(3, 10, 2, itemsize=4, record_row=100) == 4 * (10 * 2 * 4 + 100)
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=10,
                      generations=4, chains=3, seed=0, metrics=("variance", "w2"))
    assert cs.estimate_bytes(4, 3, 2) == sum(a.nbytes for a in sim.metrics.values())
    with pytest.raises(ValueError, match=r"chains must be an int in \[1, inf\]"):
        cs.estimate_bytes(10, 0, 1)
    with pytest.raises(TypeError, match="generations must be an int"):
        cs.estimate_bytes(1.5, 10, 1)


def test_large_result_warning_threshold(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert results.warn_large_result(1000, 100_000, 1) == 1001 * 100_000 * 8  # 0.75 GiB
    monkeypatch.setattr(results, "LARGE_RESULT_BYTES", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert results.warn_large_result(10, 11, 1) == 11 * 11 * 8  # 968 bytes <= 1000
    with pytest.warns(cs.LargeResultWarning, match=r"LARGE_RESULT_BYTES=.*dtype='float32'"):
        assert results.warn_large_result(10, 12, 1) == 11 * 12 * 8  # 1056 bytes > 1000


@pytest.mark.skipif("warn_large_result" not in inspect.getsource(cs.engine.simulate),
                    reason="simulate does not call results.warn_large_result yet")
def test_simulate_warns_before_a_large_result(monkeypatch):
    monkeypatch.setattr(results, "LARGE_RESULT_BYTES", 6 * 11 * 8)
    kwargs = dict(n_samples=10, generations=10, chains=6, seed=0, metrics="variance")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # at the threshold: no warning
        cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), **kwargs)
    with pytest.warns(cs.LargeResultWarning, match="0 GiB|GiB") as record:
        cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(),
                    **{**kwargs, "chains": 7})
    assert record[0].filename == __file__  # points at the caller's line
