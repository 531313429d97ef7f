"""spmm(..., out=...) writes in place and refuses an out it cannot safely use."""

import numpy as np
import pytest
import scipy.sparse as sp

import sparsejl
from sparse_cases import CPU_BACKENDS, random_csr


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_out_is_filled_and_returned(backend, rng):
    A = random_csr(rng, 20, 15, 0.3)
    B = rng.standard_normal((15, 4))
    out = np.full((20, 4), np.nan)
    assert sparsejl.spmm(A, B, backend=backend, out=out) is out
    np.testing.assert_allclose(out, A @ B, rtol=1e-12)
    vec = np.full(20, np.nan)
    assert sparsejl.spmm(A, B[:, 0], backend=backend, out=vec) is vec
    np.testing.assert_allclose(vec, A @ B[:, 0], rtol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_out_rejected(backend, rng):
    A = random_csr(rng, 6, 6, 0.5)
    B = rng.standard_normal((6, 6))
    readonly = np.empty((6, 6))
    readonly.flags.writeable = False
    cases = [(np.empty((6, 5)), ValueError, "shape"), (np.empty((6, 6), np.float32), TypeError, "dtype"),
             (np.empty((6, 6), order="F"), ValueError, "C-contiguous"), (readonly, ValueError, "read-only"),
             (B, ValueError, "overlaps B"), (np.empty((6, 12))[:, ::2], ValueError, "C-contiguous"),
             ([[0.0] * 6] * 6, TypeError, "array")]
    for out, error, words in cases:
        with pytest.raises(error, match=words):
            sparsejl.spmm(A, B, backend=backend, out=out)
    square = sp.csr_array(np.eye(6))
    data_as_out = square.data.reshape(6, 1)
    with pytest.raises(ValueError, match="overlaps A.data"):
        sparsejl.spmm(square, np.ones((6, 1)), backend=backend, out=data_as_out)
