"""Chain kernels that reach a BLAS call run with BLAS on one thread, declared with the kernel.

numba compiles ``np.dot``, ``@`` and ``np.linalg`` into calls of the BLAS/LAPACK that
scipy ships; inside a chain loop each call would start OpenBLAS's own threads, which
fight the kernel's and sum in another order (other bits for the same seed:
tests/test_empirical.py measures it). So every such kernel must be declared
``@chain_kernel(one_blas_thread=True)``: this module finds them all by reading their
source and that of every jitted helper they call.
"""

import ast
import importlib
import inspect
import pkgutil
import textwrap

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import collapse_sim._kernels as kernels_pkg
from collapse_sim._kernels import _dispatch

#: ``np.<name>`` calls that numba lowers to BLAS/LAPACK.
BLAS_CALLS = {"dot", "vdot", "inner", "outer", "matmul"}


def _kernel_modules():
    for info in pkgutil.iter_modules(kernels_pkg.__path__):
        yield importlib.import_module(f"{kernels_pkg.__name__}.{info.name}")


def _chain_kernels():
    seen = {}
    for module in _kernel_modules():
        for name, obj in vars(module).items():
            if isinstance(obj, _dispatch.ChainKernel) and obj.py_func.__module__ == module.__name__:
                seen[f"{module.__name__}.{name}"] = obj
    return seen


def _python_function(obj):
    """The Python function behind a jitted helper (or None)."""
    if isinstance(obj, _dispatch.ChainKernel):
        return obj.py_func
    return getattr(obj, "py_func", None)


def _reaches_blas(fn, seen=None) -> bool:
    """Whether ``fn`` or a jitted function it calls (by a global name) calls BLAS."""
    seen = set() if seen is None else seen
    if fn in seen:
        return False
    seen.add(fn)
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func
            if target.attr in BLAS_CALLS and isinstance(target.value, ast.Name) \
                    and target.value.id in ("np", "numpy"):
                return True
            if isinstance(target.value, ast.Attribute) and target.value.attr == "linalg":
                return True
    for name in fn.__code__.co_names:
        helper = _python_function(fn.__globals__.get(name))
        if helper is not None and _reaches_blas(helper, seen):
            return True
    return False


KERNELS = _chain_kernels()


def test_the_scan_finds_kernels_and_blas_calls():
    # the scan itself must work: it sees the kernels, and the three known BLAS users
    # (PPCA's latent and point moments, the data sets' subset moments; one through a
    # helper) and no BLAS in a kernel that has none
    assert len(KERNELS) > 30
    ppca = "collapse_sim._kernels.ppca."
    for name in ("latent_moments", "point_moments", "subset_moments"):
        assert _reaches_blas(KERNELS[ppca + name].py_func), name
    assert not _reaches_blas(KERNELS["collapse_sim._kernels.moments.moments"].py_func)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernels_reaching_blas_are_declared_one_blas_thread(name):
    kernel = KERNELS[name]
    if _reaches_blas(kernel.py_func):
        assert kernel.one_blas_thread, (
            f"{name} calls BLAS inside its chain loop: declare it "
            f"@chain_kernel(one_blas_thread=True)")


def _blas_threads() -> int:
    return max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")


def test_a_declared_kernel_runs_with_one_blas_thread(monkeypatch):
    observed = []

    def spy(*args):
        observed.append(_blas_threads())

    kernel = _dispatch.ChainKernel.__new__(_dispatch.ChainKernel)
    kernel.parallel = kernel.serial = spy
    kernel.one_blas_thread = True
    kernel(np.zeros(4))
    kernel.one_blas_thread = False
    kernel(np.zeros(4))
    assert observed[0] == 1
    assert observed[1] == _blas_threads()  # undeclared kernels leave BLAS as it is
