"""Pruning keeps exactly the right entries/blocks, at the right count, in the right format."""
import numpy as np
import pytest
import scipy.sparse as sp

from sparsejl import prune


def test_magnitude_keeps_largest_entries_exactly():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((64, 48)).astype(np.float32)
    for density in (0.0, 0.01, 0.1, 0.37, 0.5, 0.9, 1.0):
        A = prune.magnitude(W, density)
        assert isinstance(A, sp.csr_matrix)
        assert A.shape == W.shape and A.dtype == np.float32
        want = int(round(density * W.size))
        assert A.nnz == want
        D = A.toarray()
        kept = D != 0
        # kept values are W's own values
        np.testing.assert_array_equal(D[kept], W[kept])
        # every kept |w| >= every dropped |w|
        if 0 < want < W.size:
            assert np.abs(W[kept]).min() >= np.abs(W[~kept]).max()
        assert A.has_sorted_indices
        A.check_format(full_check=True)


def test_magnitude_matches_brute_force_sort():
    rng = np.random.default_rng(7)
    W = rng.standard_normal((30, 20))
    A = prune.magnitude(W, 0.25)
    order = np.argsort(-np.abs(W).ravel())[:150]
    expect = np.zeros(W.size, bool); expect[order] = True
    np.testing.assert_array_equal(A.toarray().ravel() != 0, expect)
    np.testing.assert_array_equal(prune.magnitude_mask(W, 0.25).ravel(), expect)


def test_magnitude_ties_and_zero_values_are_stored():
    W = np.ones((4, 4))            # all tied: lowest flat indices win, deterministically
    A = prune.magnitude(W, 0.25)
    assert A.nnz == 4
    np.testing.assert_array_equal(A.toarray()[0], 1)
    Z = np.zeros((5, 5))
    assert prune.magnitude(Z, 0.4).nnz == 10   # kept zeros stay stored: nnz is the kept count


def test_block_magnitude_keeps_highest_norm_blocks():
    rng = np.random.default_rng(3)
    b = 4
    W = rng.standard_normal((32, 24)).astype(np.float64)
    # make a known set of blocks dominant
    big = [(0, 0), (3, 5), (7, 2)]
    for i, j in big:
        W[i*b:(i+1)*b, j*b:(j+1)*b] *= 100
    A = prune.block_magnitude(W, 3 / 48, b)
    assert isinstance(A, sp.bsr_matrix) and A.blocksize == (b, b)
    assert A.nnz == 3 * b * b
    D = A.toarray()
    for i, j in big:
        np.testing.assert_array_equal(D[i*b:(i+1)*b, j*b:(j+1)*b], W[i*b:(i+1)*b, j*b:(j+1)*b])
    assert np.count_nonzero(D) == 3 * b * b
    M = prune.block_magnitude_mask(W, 3 / 48, b)
    assert M.shape == (8, 6) and M.sum() == 3 and all(M[i, j] for i, j in big)


def test_block_magnitude_general_density_and_norm_order():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((64, 64)).astype(np.float32)
    for b in (2, 8, 16):
        for density in (0.1, 0.5):
            A = prune.block_magnitude(W, density, b)
            nb = (64 // b) ** 2
            assert A.nnz == int(round(density * nb)) * b * b
            mask = prune.block_magnitude_mask(W, density, b)
            norms = np.linalg.norm(W.reshape(64 // b, b, 64 // b, b).swapaxes(1, 2), axis=(2, 3))
            assert norms[mask].min() >= norms[~mask].max()
            np.testing.assert_array_equal(A.toarray() != 0, np.kron(mask, np.ones((b, b), bool)))
            A.check_format(full_check=True)


def test_prune_dispatch_and_errors():
    W = np.arange(1, 65, dtype=np.float32).reshape(8, 8)
    assert isinstance(prune.prune(W, 0.5), sp.csr_matrix)
    assert isinstance(prune.prune(W, 0.5, 1), sp.csr_matrix)
    assert isinstance(prune.prune(W, 0.5, 4), sp.bsr_matrix)
    with pytest.raises(ValueError, match="divisible"):
        prune.block_magnitude(W, 0.5, 3)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="density"):
            prune.magnitude(W, bad)
    with pytest.raises(ValueError, match="2-D"):
        prune.magnitude(np.ones(5), 0.5)
    W2 = W.copy(); W2[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        prune.magnitude(W2, 0.5)


@pytest.mark.parametrize("blocksize", [None, 1, 4, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_pattern_seeded_exact_count(blocksize, dtype):
    m, k = 128, 96
    for density in (0.0, 0.05, 0.3, 0.8, 1.0):
        A = prune.random_pattern(m, k, density, blocksize=blocksize, seed=11, dtype=dtype)
        B = prune.random_pattern(m, k, density, blocksize=blocksize, seed=11, dtype=dtype)
        C = prune.random_pattern(m, k, density, blocksize=blocksize, seed=12, dtype=dtype)
        b = blocksize or 1
        assert A.shape == (m, k) and A.dtype == dtype
        assert A.nnz == int(round(density * (m // b) * (k // b))) * b * b
        assert prune.density_of(A) == pytest.approx(A.nnz / (m * k))
        assert (A != B).nnz == 0
        if 0 < density < 1:
            assert (A.toarray() != 0).tolist() != (C.toarray() != 0).tolist()
        if b > 1:
            assert isinstance(A, sp.bsr_matrix) and A.blocksize == (b, b)
        else:
            assert isinstance(A, sp.csr_matrix)
        A.check_format(full_check=True)


def test_dense_weights_scale_and_seed():
    W = prune.dense_weights(512, 1024, seed=3)
    assert W.shape == (512, 1024) and W.dtype == np.float32
    assert abs(W.std() - 1 / 32) < 1e-3
    np.testing.assert_array_equal(W, prune.dense_weights(512, 1024, seed=3))
    assert not np.array_equal(W, prune.dense_weights(512, 1024, seed=4))


def test_pruned_matrix_multiplies_like_masked_dense():
    # the pruned operator is W * mask: checks indptr/indices layout via an actual product
    rng = np.random.default_rng(9)
    W = rng.standard_normal((48, 32))
    X = rng.standard_normal((32, 7))
    A = prune.magnitude(W, 0.2)
    np.testing.assert_allclose(A @ X, (W * prune.magnitude_mask(W, 0.2)) @ X, rtol=1e-12)
    Bk = prune.block_magnitude(W, 0.3, 8)
    mask = np.kron(prune.block_magnitude_mask(W, 0.3, 8), np.ones((8, 8), bool))
    np.testing.assert_allclose(Bk @ X, (W * mask) @ X, rtol=1e-12)
