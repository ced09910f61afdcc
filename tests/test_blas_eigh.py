"""The threaded batched eigh of collapse_sim.families._blas: the same bits as one eigh."""

import numba
import numpy as np
import pytest

from collapse_sim.families import _blas


@pytest.mark.parametrize("batch", [1, 15, 16, 17, 101])
def test_threaded_eigh_is_numpy_eigh_bit_for_bit(batch):
    rng = np.random.default_rng(batch)
    x = rng.normal(size=(batch, 40, 9))
    cov = np.einsum("bij,bik->bjk", x, x)
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            lam, vec = _blas.eigh(cov)
            with _blas.one_thread():
                ref_lam, ref_vec = np.linalg.eigh(cov)
            np.testing.assert_array_equal(lam, ref_lam)
            np.testing.assert_array_equal(vec, ref_vec)
    finally:
        numba.set_num_threads(before)
