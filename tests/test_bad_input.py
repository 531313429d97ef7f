"""Malformed operands get a ValueError or TypeError that names the problem, on every backend."""

import re

import numpy as np
import pytest
import scipy.sparse as sp

import sparsejl
from sparse_cases import CPU_BACKENDS, MALFORMED_BSR, MALFORMED_CSR


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
