"""Simulation results: tables, summaries and atomic persistence."""

import os

import numpy as np
import pandas as pd
import pytest

import collapse_sim as cs


@pytest.fixture(scope="module")
def sim():
    return cs.simulate(cs.Gaussian(mean=0.0, var=2.0), cs.GaussianFit(), n_samples=10,
                       generations=7, chains=5, seed=1, policy=cs.KeepReal(0.2),
                       record_models=True)


def test_to_frame_is_long_table(sim):
    frame = sim.to_frame()
    assert list(frame.columns[:2]) == ["generation", "chain"]
    assert len(frame) == 8 * 5
    row = frame[(frame.generation == 3) & (frame.chain == 4)]
    assert row["variance"].item() == sim.metrics["variance"][3, 4]
    assert set(cs.metrics.DEFAULT) <= set(frame.columns)


def test_summary_matches_numpy(sim):
    table = sim.summary(generations=[0, 7], quantiles=(0.1, 0.5))
    np.testing.assert_allclose(table.loc[("w2", 7), "mean"], sim.metrics["w2"][7].mean())
    np.testing.assert_allclose(table.loc[("variance", 7), "q50"],
                               np.median(sim.metrics["variance"][7]))
    assert table.loc[("variance", 0), "q10"] == 2.0
    with pytest.raises(ValueError, match="generations"):
        sim.summary(generations=[8])


def test_save_load_round_trip(sim, tmp_path):
    path = sim.save(tmp_path / "run.npz")
    back = cs.Simulation.load(path)
    assert back.config == sim.config
    assert back.config["policy"] == {"type": "KeepReal", "fraction": 0.2}
    for name in sim.metrics:
        np.testing.assert_array_equal(back.metrics[name], sim.metrics[name])
    np.testing.assert_array_equal(back.models["cov"], sim.models["cov"])
    assert back.generations == 7 and back.chains == 5


def test_save_adds_suffix(sim, tmp_path):
    assert sim.save(tmp_path / "run").name == "run.npz"


def test_crash_mid_save_keeps_previous_file(sim, tmp_path, monkeypatch):
    path = sim.save(tmp_path / "run.npz")
    before = path.read_bytes()

    def crash(*args, **kwargs):  # after the first entry's header is written
        raise KeyboardInterrupt("power cut")
        yield

    monkeypatch.setattr(cs._io, "_chunks", crash)
    with pytest.raises(KeyboardInterrupt):
        sim.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["run.npz"]  # no temporary file left behind


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(ValueError, match="not a collapse_sim"):
        cs.Simulation.load(tmp_path / "other.npz")


def test_seed_none_is_recorded_and_config_is_json(sim):
    import json

    json.dumps(sim.config)
    assert sim.config["n_samples"] == 10 and sim.config["chains"] == 5
    assert isinstance(sim.to_frame(), pd.DataFrame)
