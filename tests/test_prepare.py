"""sparsejl.prepare makes GPU weights only: a host matrix is a clear TypeError, before any import of CuPy."""
import numpy as np
import pytest
import scipy.sparse as sp

import sparsejl


@pytest.mark.parametrize("fmt", ["csr", "bsr"])
def test_prepare_of_a_host_matrix_is_a_type_error(fmt):
    A = sp.random_array((64, 64), density=0.2, format="csr", rng=np.random.default_rng(0))
    A = A.tobsr(blocksize=(16, 16)) if fmt == "bsr" else A
    with pytest.raises(TypeError, match="A must hold CuPy arrays"):
        sparsejl.prepare(A)


def test_prepare_of_a_dense_array_is_a_type_error():
    with pytest.raises(TypeError, match="expected a CSR or BSR sparse matrix"):
        sparsejl.prepare(np.ones((4, 4)))
