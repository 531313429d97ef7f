"""Random operands and float64 references shared by the CPU tests (imported as a module: conftest is
what pytest loads per folder, and tests/gpu has its own)."""

import numpy as np
import scipy.sparse as sp

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
