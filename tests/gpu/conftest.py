"""What every GPU test takes: CuPy on a usable GPU (else a skip that says why), and a fresh seed."""

import numpy as np
import pytest


@pytest.fixture
def gpu():
    """CuPy, or a skip that says why there is no usable GPU here."""
    from sparsejl.backends import _cuda
    reason = _cuda.gpu_reason()
    if reason is not None:
        pytest.skip(reason)
    import cupy
    return cupy


@pytest.fixture
def seed():
    """A fresh seed per test, printed on failure so that a case can be replayed."""
    return int(np.random.SeedSequence().entropy % (2**31))
