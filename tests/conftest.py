"""Shared test configuration."""

import numba
import pytest


@pytest.fixture
def threads():
    """Set numba's thread count for one test and restore it afterwards."""
    before = numba.get_num_threads()

    def set_threads(k: int) -> None:
        numba.set_num_threads(min(k, numba.config.NUMBA_NUM_THREADS))

    yield set_threads
    numba.set_num_threads(before)
