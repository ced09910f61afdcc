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


@pytest.fixture
def benchmark_script():
    """Import a script of ``benchmarks/`` by its file name (the directory is not a package
    on the tests' path), as ``benchmark_script("bigram_draw")``."""
    import importlib.util
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"_benchmark_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(autouse=True)
def _dispatch_ignores_the_machine_load(monkeypatch):
    """Chain kernels pick their build by size alone in tests (not by how busy the machine
    is, which would make the builds a test exercises depend on other processes);
    tests/test_dispatch_load.py tests the load rule itself."""
    from collapse_sim._kernels import _dispatch

    monkeypatch.setattr(_dispatch, "BUSY_CORES", float("inf"))
