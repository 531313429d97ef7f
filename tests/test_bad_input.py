"""Malformed operands get a ValueError or TypeError that names the problem, on every backend."""

import re

import numpy as np
import pytest
import scipy.sparse as sp

import sparsejl
from sparse_cases import CPU_BACKENDS


def csr(indptr, indices, data, shape, index_dtype=np.int32):
    return sparsejl.CSR(np.asarray(data, dtype=np.float64), np.asarray(indices, dtype=index_dtype),
                        np.asarray(indptr, dtype=index_dtype), shape)


# id: (operand, the words the message must contain)
MALFORMED_CSR = {
    "indptr-short": (csr([0, 1], [0], [1.0], (2, 2)), "indptr has length 2, expected 3"),
    "indptr-long": (csr([0, 1, 1, 1], [0], [1.0], (2, 2)), "indptr has length 4, expected 3"),
    "indptr-start": (csr([1, 1, 1], [0], [1.0], (2, 2)), "indptr[0] is 1, expected 0"),
    "indptr-decreasing": (csr([0, 2, 1], [0, 1], [1.0, 2.0], (2, 2)), "indptr decreases"),
    "indptr-past-nnz": (csr([0, 1, 3], [0, 1], [1.0, 2.0], (2, 2)), "past the 2 stored"),
    "index-too-large": (csr([0, 1, 2], [0, 2], [1.0, 2.0], (2, 2)), "out of range"),
    "index-negative": (csr([0, 1, 2], [0, -1], [1.0, 2.0], (2, 2)), "out of range"),
    "data-short": (sparsejl.CSR(np.ones(1), np.zeros(2, np.int32), np.array([0, 1, 2], np.int32), (2, 2)),
                   "data holds 1 values but indices holds 2"),
}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("problem", list(MALFORMED_CSR))
def test_malformed_csr_spmm(backend, problem):
    A, words = MALFORMED_CSR[problem]
    with pytest.raises(ValueError, match=re.escape(words)):
        sparsejl.spmm(A, np.ones((2, 3)), backend=backend)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("problem", list(MALFORMED_CSR))
def test_malformed_csr_spgemm(backend, problem):
    good = sp.csr_array(np.eye(2))
    A, words = MALFORMED_CSR[problem]
    with pytest.raises(ValueError, match=re.escape(words)):
        sparsejl.spgemm(A, good, backend=backend)
    with pytest.raises(ValueError, match=re.escape(words)):
        sparsejl.spgemm(good, A, backend=backend)


def bsr(indptr, indices, data, shape, b):
    return sparsejl.BSR(np.asarray(data, dtype=np.float32), np.asarray(indices, np.int64),
                        np.asarray(indptr, np.int64), shape, b)


MALFORMED_BSR = {
    "not a multiple of the blocksize": bsr([0, 1], [0], np.ones((1, 2, 2)), (3, 2), 2),
    "data must have shape": bsr([0, 1], [0], np.ones((1, 2, 3)), (2, 2), 2),
    "blocksize 200 is outside": bsr([0, 1], [0], np.ones((1, 200, 200)), (200, 200), 200),
    "out of range": bsr([0, 1, 1], [1], np.ones((1, 2, 2)), (4, 2), 2),
    "decreases": bsr([0, 1, 0], [0], np.ones((1, 2, 2)), (4, 2), 2),
}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("problem", list(MALFORMED_BSR))
def test_malformed_bsr(backend, problem):
    A = MALFORMED_BSR[problem]
    with pytest.raises(ValueError, match=problem):
        sparsejl.spmm(A, np.ones((A.shape[1], 2), np.float32), backend=backend)


def test_non_square_blocks():
    with pytest.raises(ValueError, match="square blocks"):
        sparsejl.spmm(sp.bsr_array(np.ones((4, 6)), blocksize=(2, 3)), np.ones(6))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_type_errors(backend):
    A = sp.csr_array(np.eye(3))
    with pytest.raises(TypeError, match="int64"):
        sparsejl.spmm(A, np.ones((3, 2), dtype=np.int64), backend=backend)
    with pytest.raises(TypeError, match="complex128"):
        sparsejl.spmm(A, np.ones((3, 2), dtype=complex), backend=backend)
    with pytest.raises(TypeError, match="data has dtype int"):
        sparsejl.spmm(sp.csr_array(np.eye(3, dtype=np.int32)), np.ones((3, 2)), backend=backend)
    with pytest.raises(TypeError, match="has dtype int16"):
        sparsejl.spmm(sparsejl.CSR(np.ones(1), np.zeros(1, np.int16), np.array([0, 1], np.int16), (1, 1)),
                      np.ones(1), backend=backend)
    with pytest.raises(TypeError, match="CSR or BSR"):
        sparsejl.spmm(A.tocoo(), np.ones(3), backend=backend)
    with pytest.raises(TypeError, match="CSR or BSR"):
        sparsejl.spmm(np.eye(3), np.ones(3), backend=backend)
    with pytest.raises(TypeError, match="spgemm"):
        sparsejl.spmm(A, A, backend=backend)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_shape_errors(backend):
    A = sp.csr_array(np.eye(3))
    with pytest.raises(ValueError, match="dimension mismatch"):
        sparsejl.spmm(A, np.ones((4, 2)), backend=backend)
    with pytest.raises(ValueError, match="vector or a matrix"):
        sparsejl.spmm(A, np.ones((3, 2, 2)), backend=backend)
    with pytest.raises(ValueError, match="dimension mismatch"):
        sparsejl.spgemm(A, sp.csr_array(np.eye(4)), backend=backend)
    with pytest.raises(ValueError, match="block sizes differ"):
        sparsejl.spgemm(sp.bsr_array(np.eye(4), blocksize=(2, 2)), sp.bsr_array(np.eye(4), blocksize=(4, 4)), backend=backend)
    with pytest.raises(ValueError, match="two CSR or two BSR"):
        sparsejl.spgemm(sp.bsr_array(np.eye(4), blocksize=(2, 2)), sp.csr_array(np.eye(4)), backend=backend)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'mkl'"):
        sparsejl.spmm(sp.csr_array(np.eye(2)), np.ones(2), backend="mkl")
