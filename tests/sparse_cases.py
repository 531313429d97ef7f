"""Random operands and float64 references shared by the CPU tests (imported as a module: conftest is
what pytest loads per folder, and tests/gpu has its own)."""

import numpy as np
import scipy.sparse as sp

import sparsejl

CPU_BACKENDS = ["julia", "scipy", "dense"]
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def random_csr(rng, m, k, density, dtype=np.float64, index_dtype=np.int32, shuffle=False, duplicates=False):
    """A CSR with non-zero random values; optionally unsorted column indices and repeated entries."""
    a = sp.random_array((m, k), density=density, format="csr", dtype=np.float64, rng=rng,
                        data_sampler=lambda size: rng.uniform(0.5, 1.5, size) * rng.choice([-1, 1], size))
    a = a.astype(dtype)
    indptr, indices, data = a.indptr.astype(index_dtype), a.indices.astype(index_dtype), a.data
    if duplicates and a.nnz:
        # repeat every third entry of each row, splitting its value in two halves
        rows, cols, vals = [], [], []
        for i in range(m):
            lo, hi = indptr[i], indptr[i + 1]
            c, v = list(indices[lo:hi]), list(data[lo:hi])
            extra = [(c[j], v[j] / 2) for j in range(0, len(c), 3)]
            for j in range(0, len(c), 3):
                v[j] = v[j] / 2
            rows.append(len(c) + len(extra)); cols += c + [e[0] for e in extra]; vals += v + [e[1] for e in extra]
        indptr = np.concatenate([[0], np.cumsum(rows)]).astype(index_dtype)
        indices, data = np.array(cols, dtype=index_dtype), np.array(vals, dtype=dtype)
    if shuffle:
        for i in range(m):
            lo, hi = indptr[i], indptr[i + 1]
            p = rng.permutation(hi - lo) + lo
            indices[lo:hi], data[lo:hi] = indices[p], data[p]
    return sp.csr_array((data, indices, indptr), shape=(m, k), copy=False)


def random_bsr(rng, mb, kb, b, density, dtype=np.float64, index_dtype=np.int32, shuffle=False):
    """A BSR of b×b blocks, a `density` share of the blocks present, every stored value non-zero."""
    pattern = random_csr(rng, mb, kb, density, index_dtype=index_dtype, shuffle=shuffle)
    nnzb = pattern.nnz
    data = (rng.uniform(0.5, 1.5, (nnzb, b, b)) * rng.choice([-1, 1], (nnzb, b, b))).astype(dtype)
    return sp.bsr_array((data, pattern.indices, pattern.indptr), shape=(mb * b, kb * b), blocksize=(b, b), copy=False)


def assert_product_close(got, A, B, dtype):
    """|got - A@B| within rtol of (|A| @ |B|), all in float64."""
    A64 = abs(sp.csr_array(A).astype(np.float64))
    ref = sp.csr_array(A).astype(np.float64) @ np.asarray(B, dtype=np.float64)
    scale = A64 @ np.abs(np.asarray(B, dtype=np.float64))
    got = np.asarray(got)
    assert got.shape == ref.shape
    err = np.abs(got.astype(np.float64) - ref)
    bound = RTOL[np.dtype(dtype)] * (scale + np.finfo(np.float64).tiny)
    assert np.all(err <= bound), f"max error {err.max()} exceeds bound at {np.unravel_index(np.argmax(err - bound), err.shape)}"


# Malformed operands, shared by the CPU tests and the GPU ones (tests/gpu, each case in a process of its own)

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
