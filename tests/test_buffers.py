"""The recycled buffers of collapse_sim._buffers: lent again only when nothing refers to them."""

import numpy as np

import collapse_sim as cs
from collapse_sim._buffers import Recycler
from collapse_sim.sampling import chain_streams


def test_a_buffer_is_lent_again_only_once_released():
    pool = Recycler(1 << 20)
    a = pool.take((4, 8), np.int64)
    assert a.shape == (4, 8) and a.dtype == np.int64
    a[:] = 7
    b = pool.take(16, np.int32)  # a is held: b gets other memory
    assert not np.shares_memory(a, b)
    b[:] = 1
    assert (a == 7).all()
    address = a.__array_interface__["data"][0]
    del a
    c = pool.take((2, 3), np.float64)  # a's buffer again, as another dtype and shape
    assert c.__array_interface__["data"][0] == address
    assert c.shape == (2, 3) and c.dtype == np.float64


def test_a_view_keeps_its_buffer_lent():
    pool = Recycler(1 << 20)
    a = pool.take(100)
    view = a[10:20]
    del a
    b = pool.take(100)
    assert not np.shares_memory(view, b)


def test_requests_beyond_the_limit_get_fresh_memory_not_kept():
    pool = Recycler(64)
    big = pool.take(100, np.int64)  # 800 bytes, beyond the limit: fresh, not kept
    assert big.size == 100 and pool._buffers == []


def test_a_small_request_does_not_keep_a_large_buffer_alive():
    pool = Recycler(1 << 24)
    big = pool.take(1 << 20, np.uint8)
    address = big.__array_interface__["data"][0]
    del big
    small = pool.take(10, np.float64)  # 80 bytes: the free 1 MiB buffer would be waste
    assert small.__array_interface__["data"][0] != address
    again = pool.take(1 << 19, np.uint8)  # half of it: lent
    assert again.__array_interface__["data"][0] == address


def test_free_buffers_make_room_least_recently_lent_first():
    pool = Recycler(1000)
    a = pool.take(600, np.uint8)
    b = pool.take(300, np.uint8)
    del a
    c = pool.take(900, np.uint8)  # 600 free + 300 held + 900 > 1000: the free 600 goes
    assert sorted(buf.size for buf in pool._buffers) == [300]  # 300 + 900 > 1000: not kept
    del b, c
    d = pool.take(900, np.uint8)  # both free ones go, the new one is kept
    assert [buf.size for buf in pool._buffers] == [900]
    assert d.size == 900


def test_held_ngram_models_are_not_overwritten_by_later_fits():
    """Fits draw their arrays from recycled memory: a model someone holds must keep its
    counts while later fits run (and reuse the memory of models nobody holds)."""
    truth = cs.NGramTruth(cs.text.Corpus.from_string("a b a c b a d .\n" * 60), order=2,
                          block_size=8)
    fit = cs.NGramFit(order=2)
    held = fit.fit(truth.draw(20, chain_streams(0, 3)), truth)
    before = {name: a.copy() for name, a in held._arrays.items()}
    for seed in range(1, 6):
        fit.fit(truth.draw(20, chain_streams(seed, 3)), truth)
        held.draw(5, chain_streams(seed, 3))
    for name, a in held._arrays.items():
        np.testing.assert_array_equal(a, before[name], err_msg=name)


def test_held_results_are_not_overwritten_by_later_runs():
    """Result arrays are recycled memory too: a Simulation someone holds keeps its values
    while later runs (of the same shape: the memory they would reuse) go on."""
    truth, fit = cs.Gaussian(0.0, 1.0), cs.GaussianFit()
    held = cs.simulate(truth, fit, n_samples=20, generations=30, chains=40, seed=1)
    before = {name: a.copy() for name, a in held.metrics.items()}
    for seed in range(2, 6):
        cs.simulate(truth, fit, n_samples=20, generations=30, chains=40, seed=seed)
    for name, a in held.metrics.items():
        np.testing.assert_array_equal(a, before[name], err_msg=name)


def test_free_means_no_reference_outside_the_pool():
    """The refcount rule, whatever the interpreter reports: a buffer with a live view,
    or held by a name, is not free; released, it is."""
    pool = Recycler(1 << 20)
    a = pool.take(10)
    assert pool._free() == []
    view = a[2:4]
    del a
    assert pool._free() == []
    del view
    assert pool._free() == [0]


def test_held_kde_draws_models_and_real_samples_are_not_overwritten():
    """A KDE's draws (the next model's centres), its refit's copy of a real sample and
    an Empirical sample are recycled memory: what someone holds keeps its values while
    later draws and fits of the same shapes (the memory they would reuse) run."""
    truth = cs.Empirical(cs.datasets.two_moons(600, noise=0.1, seed=0), heldout=0.2)
    fit = cs.KDEFit(bandwidth=0.1)
    real = truth.draw(50, chain_streams(0, 4))
    model = fit.fit_chains(real, streams=chain_streams(0, 4))
    drawn = model.draw(50, chain_streams(1, 4))
    child = fit.fit_chains(drawn, streams=chain_streams(1, 4), previous=model)
    held = {"real": real, "centres": model.centres, "drawn": drawn,
            "child centres": child.centres, "child ids": child.ids}
    before = {name: a.copy() for name, a in held.items()}
    assert not np.shares_memory(model.centres, real)  # the model owns its centres
    for seed in range(2, 8):
        again = truth.draw(50, chain_streams(seed, 4))
        other = fit.fit_chains(again, streams=chain_streams(seed, 4))
        other.draw(50, chain_streams(seed, 4))
        model.draw(50, chain_streams(seed, 4))
        cs.simulate(truth, fit, n_samples=50, generations=3, chains=4, seed=seed,
                    metrics=("variance",))
    for name, a in held.items():
        np.testing.assert_array_equal(a, before[name], err_msg=name)
