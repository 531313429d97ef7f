"""GPU tests: skipped, saying why, on machines without CuPy or a CUDA GPU."""
import pytest


def gpu_reason():
    from sparsejl.backends import _cuda
    return _cuda.gpu_reason()


@pytest.fixture
def gpu():
    reason = gpu_reason()
    if reason is not None:
        pytest.skip(reason)
    import cupy
    return cupy


@pytest.fixture
def seed():
    """A fresh seed per test, printed on failure so that a case can be replayed."""
    import numpy as np
    return int(np.random.SeedSequence().entropy % (2**31))
