"""CSR and BSR: thin views over the index and value arrays, with SciPy's names.

A view never copies what it is given. `check_format` validates the arrays: the cheap checks
(dtypes, lengths, shape) always, the O(nnz) content checks on request. The arrays may be NumPy or
CuPy; checks use the arrays' own module.

On the GPU the content checks read the device (they wait for it), so a matrix's structure is
checked once, when it is first multiplied, and the verdict is kept with the matrix
(`checked_once`): as long as its `indptr` and `indices` are the same array objects, later products
skip the check. Arrays changed in place need `check_format()` (or `sparsejl.check_format(A)` for a
SciPy or CuPy matrix) again before the next product.
"""

from __future__ import annotations

import weakref

import numpy as np
import scipy.sparse as sp

from . import interop
from .interop import array_module

VALUE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
MAX_BLOCKSIZE = 128


def check_value_dtype(dtype, what: str, allowed=VALUE_DTYPES) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        dtype = np.dtype(dtype)
    if dtype not in allowed:
        names = ", ".join(d.name for d in allowed)
        raise TypeError(f"{what} has dtype {dtype}; sparsejl supports {names}")
    return dtype


def _check_dims(shape) -> tuple[int, int]:
    if len(shape) != 2:
        raise ValueError(f"a sparse matrix has 2 dimensions, got shape {tuple(shape)}")
    m, n = int(shape[0]), int(shape[1])
    if m < 0 or n < 0:
        raise ValueError(f"shape {tuple(shape)} has a negative dimension")
    if m >= 2**62 or n >= 2**62:
        raise ValueError(f"shape {tuple(shape)} is too large")
    return m, n


class _Compressed:
    """What CSR and BSR share: indptr over (block) rows, indices of (block) columns, data."""

    format = ""

    def __init__(self, data, indices, indptr, shape):
        self.data, self.indices, self.indptr = data, indices, indptr
        self.shape = _check_dims(shape)
        self.verdict = None   # the StructureVerdict of its last full check, if still valid

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    @property
    def nnz(self) -> int:
        """Stored values (explicit zeros included), as SciPy counts them."""
        return int(self.indptr[-1]) * self.blocksize**2 if len(self.indptr) else 0

    @property
    def density(self) -> float:
        m, n = self.shape
        return self.nnz / (m * n) if m and n else 0.0

    def _check_indexing(self, rows: int, cols: int, full: bool, value_dtypes) -> None:
        for name, a in (("indptr", self.indptr), ("indices", self.indices)):
            if getattr(a, "ndim", None) != 1:
                raise ValueError(f"{name} must be a 1-D array, got {type(a).__name__} of shape {getattr(a, 'shape', '?')}")
            if a.dtype not in INDEX_DTYPES:
                raise TypeError(f"{name} has dtype {a.dtype}; sparsejl supports int32 and int64 indices")
        check_value_dtype(self.data.dtype, "data", value_dtypes if value_dtypes is not None else _all_value_dtypes(self))
        if len(self.indptr) != rows + 1:
            raise ValueError(f"indptr has length {len(self.indptr)}, expected {rows + 1} "
                             f"(one more than the {rows} {self._row_word()}s)")
        nstored = len(self.indices)
        if len(self.data) != nstored:
            raise ValueError(f"data holds {len(self.data)} {self._entry_word()}s but indices holds {nstored}")
        if not full:
            return
        xp = array_module(self.indptr)
        indptr, indices = self.indptr, self.indices
        if int(indptr[0]) != 0:
            raise ValueError(f"indptr[0] is {int(indptr[0])}, expected 0")
        steps = xp.diff(indptr)
        if len(steps) and bool((steps < 0).any()):
            bad = int(xp.argmax(steps < 0))
            raise ValueError(f"indptr decreases at position {bad + 1} ({int(indptr[bad])} then {int(indptr[bad + 1])})")
        if int(indptr[-1]) > nstored:
            raise ValueError(f"indptr ends at {int(indptr[-1])}, past the {nstored} stored {self._entry_word()}s")
        used = indices[: int(indptr[-1])]
        if len(used):
            out = (used < 0) | (used >= cols)
            if bool(out.any()):
                bad = int(xp.argmax(out))
                raise ValueError(f"indices[{bad}] = {int(used[bad])} is out of range for "
                                 f"{cols} {self._row_word().replace('row', 'column')}s")

    def _row_word(self) -> str:
        return "row"

    def _entry_word(self) -> str:
        return "value"


class CSR(_Compressed):
    """Compressed sparse rows: row i holds data[indptr[i]:indptr[i+1]] at columns indices[...]."""

    format = "csr"
    blocksize = 1

    def check_format(self, full: bool = True, value_dtypes=None) -> "CSR":
        """Check the arrays (all of them with `full`), raising on the first problem; a full check
        is kept as the structure's verdict for GPU products (see the module's docstring)."""
        self._check_indexing(self.shape[0], self.shape[1], full, value_dtypes)
        if getattr(self.data, "ndim", None) != 1:
            raise ValueError(f"CSR data must be 1-D, got shape {getattr(self.data, 'shape', '?')}")
        if full:
            self.verdict = StructureVerdict(self)
        return self

    @classmethod
    def from_scipy(cls, a) -> "CSR":
        if a.format != "csr":
            raise TypeError(f"expected a CSR matrix, got format {a.format!r}")
        return cls(a.data, a.indices, a.indptr, a.shape)

    @classmethod
    def from_dense(cls, dense, index_dtype=np.int32) -> "CSR":
        out = sp.csr_array(np.asarray(dense))
        return cls(out.data, out.indices.astype(index_dtype, copy=False),
                   out.indptr.astype(index_dtype, copy=False), out.shape)

    @classmethod
    def from_torch(cls, t) -> "CSR":
        """A view over a PyTorch sparse CSR tensor's arrays (CPU or CUDA), no copy."""
        return _from_torch(cls, t)

    def to_scipy(self):
        """A SciPy csr_array sharing these arrays (NumPy-held views only)."""
        out = sp.csr_array((self.data, self.indices, self.indptr), shape=self.shape, copy=False)
        return out

    def toarray(self) -> np.ndarray:
        return self.to_scipy().toarray()

    def __repr__(self) -> str:
        return f"<sparsejl.CSR {self.shape[0]}x{self.shape[1]}, nnz={self.nnz}, dtype={self.dtype}, index={self.indices.dtype}>"


class BSR(_Compressed):
    """Block sparse rows with square b×b blocks: data has shape (nnzb, b, b), each block row-major."""

    format = "bsr"

    def __init__(self, data, indices, indptr, shape, blocksize=None):
        super().__init__(data, indices, indptr, shape)
        b = blocksize if blocksize is not None else (data.shape[1] if getattr(data, "ndim", 0) == 3 else None)
        if b is None:
            raise ValueError("BSR needs a blocksize (or data of shape (nnzb, b, b))")
        if isinstance(b, tuple):
            if len(b) != 2 or b[0] != b[1]:
                raise ValueError(f"sparsejl's BSR uses square blocks, got blocksize {b}")
            b = b[0]
        self.blocksize = int(b)

    def check_format(self, full: bool = True, value_dtypes=None) -> "BSR":
        """As CSR.check_format, and the blocks' shape."""
        b = self.blocksize
        if not 1 <= b <= MAX_BLOCKSIZE:
            raise ValueError(f"blocksize {b} is outside 1..{MAX_BLOCKSIZE}")
        m, n = self.shape
        if m % b or n % b:
            raise ValueError(f"shape {self.shape} is not a multiple of the blocksize {b}")
        if getattr(self.data, "ndim", None) != 3 or tuple(self.data.shape[1:]) != (b, b):
            raise ValueError(f"BSR data must have shape (nnzb, {b}, {b}), got {getattr(self.data, 'shape', '?')}")
        self._check_indexing(m // b, n // b, full, value_dtypes)
        if full:
            self.verdict = StructureVerdict(self)
        return self

    @property
    def nnzb(self) -> int:
        return len(self.indices)

    def _row_word(self) -> str:
        return "block row"

    def _entry_word(self) -> str:
        return "block"

    @classmethod
    def from_scipy(cls, a) -> "BSR":
        if a.format != "bsr":
            raise TypeError(f"expected a BSR matrix, got format {a.format!r}")
        return cls(a.data, a.indices, a.indptr, a.shape, a.blocksize)

    @classmethod
    def from_dense(cls, dense, blocksize: int, index_dtype=np.int32) -> "BSR":
        """Keeps every block that holds a non-zero."""
        dense = np.asarray(dense)
        out = sp.bsr_array(dense, blocksize=(blocksize, blocksize))
        return cls(out.data, out.indices.astype(index_dtype, copy=False),
                   out.indptr.astype(index_dtype, copy=False), out.shape, blocksize)

    @classmethod
    def from_torch(cls, t) -> "BSR":
        """A view over a PyTorch sparse BSR tensor's arrays (CPU or CUDA), no copy."""
        return _from_torch(cls, t)

    def to_scipy(self):
        """A SciPy bsr_array sharing these arrays (NumPy-held views only)."""
        b = self.blocksize
        return sp.bsr_array((self.data, self.indices, self.indptr), shape=self.shape,
                            blocksize=(b, b), copy=False)

    def toarray(self) -> np.ndarray:
        return self.to_scipy().toarray()

    def __repr__(self) -> str:
        return (f"<sparsejl.BSR {self.shape[0]}x{self.shape[1]}, blocksize={self.blocksize}, nnzb={self.nnzb}, "
                f"dtype={self.dtype}, index={self.indices.dtype}>")


def _from_torch(cls, t):
    parts = interop.torch_sparse_parts(t)
    if parts is None or parts[0] != cls.format:
        raise TypeError(f"expected a PyTorch sparse {cls.format.upper()} tensor, got "
                        f"{getattr(t, 'layout', type(t).__name__)}")
    fmt, data, indices, indptr, shape, b = parts
    return CSR(data, indices, indptr, shape) if fmt == "csr" else BSR(data, indices, indptr, shape, b)


def as_view(a) -> CSR | BSR:
    """sparsejl's view of a sparse operand: own types as they are; SciPy and CuPy CSR/BSR and
    PyTorch sparse CSR/BSR tensors wrapped in place."""
    if isinstance(a, (CSR, BSR)):
        return a
    parts = interop.torch_sparse_parts(a)
    if parts is not None:
        return _from_torch(CSR if parts[0] == "csr" else BSR, a)
    fmt = getattr(a, "format", None)
    if fmt == "csr" and hasattr(a, "indptr"):
        return CSR(a.data, a.indices, a.indptr, a.shape)
    if fmt == "bsr" and hasattr(a, "indptr"):
        return BSR(a.data, a.indices, a.indptr, a.shape, a.blocksize)
    raise TypeError(f"expected a CSR or BSR sparse matrix (SciPy, CuPy or sparsejl.CSR/BSR), got "
                    f"{type(a).__module__}.{type(a).__name__}" + (f" in format {fmt!r}; convert it with .tocsr()" if fmt else ""))


class StructureVerdict:
    """That one full check passed for these `indptr` and `indices` objects (held, so that their
    identity stays theirs) at this shape; `cache` keeps what backends derive from the structure
    alone (a GPU kernel's block-row order, say), dropped with the verdict; `products` the GPU
    products that calls with these arrays bound (ops.spmm), dropped with it too."""

    __slots__ = ("indptr", "indices", "shape", "blocksize", "data", "cache", "products")

    def __init__(self, view):
        self.indptr, self.indices = view.indptr, view.indices
        self.shape, self.blocksize = view.shape, view.blocksize
        self.data = view.data   # the values that passed the cheap checks with them (a new array: checked again)
        self.cache = {}
        self.products = {}

    def holds_for(self, view) -> bool:
        return (self.indptr is view.indptr and self.indices is view.indices and self.shape == view.shape
                and self.blocksize == view.blocksize)


_foreign_verdicts: dict = {}   # id(SciPy/CuPy matrix) -> (weak reference to it, its verdict)


def _forget(key):
    return lambda _ref: _foreign_verdicts.pop(key, None)


def checked_once(view, source, value_dtypes=VALUE_DTYPES):
    """`view` of `source` (itself, or the SciPy/CuPy matrix it wraps) after the cheap checks, and
    the content checks unless a verdict kept with `source` still holds; `view.verdict` is then the
    verdict, whose `cache` the backends may use."""
    if source is view:
        verdict = view.verdict
    else:
        kept = _foreign_verdicts.get(id(source))
        verdict = kept[1] if kept is not None and kept[0]() is source else None
    if verdict is not None and verdict.holds_for(view):
        if verdict.data is not view.data:          # new values for a known structure
            view.check_format(full=False, value_dtypes=value_dtypes)
            verdict.data = view.data
        view.verdict = verdict
        return view
    view.check_format(full=True, value_dtypes=value_dtypes)
    if source is view:
        return view
    try:
        ref = weakref.ref(source, _forget(id(source)))
    except TypeError:       # an object that takes no weak reference: checked on every call
        return view
    _foreign_verdicts[id(source)] = (ref, view.verdict)
    return view


def check_format(A, value_dtypes=None) -> None:
    """Check every part of `A`'s structure now (a sparsejl CSR/BSR, or a SciPy or CuPy CSR/BSR
    matrix), raising ValueError on the first problem, and keep the verdict for later GPU products.
    Call it after changing `indptr` or `indices` in place."""
    view = as_view(A)
    _foreign_verdicts.pop(id(A), None)
    view.verdict = None
    checked_once(view, A, value_dtypes if value_dtypes is not None else _all_value_dtypes(view))


def _all_value_dtypes(view):
    if array_module(view.data) is np:
        return VALUE_DTYPES
    from .backends import _cuda
    return _cuda.value_dtypes()


class Prepared:
    """A sparse weight prepared once for GPU products with few columns (`sparsejl.prepare`).

    It holds its own device arrays in the layout the decoding kernels read (`layout`: "bitmap" for
    unstructured weights, 16-row × 64-column tiles of a bitmask each and packed values; "bsr" for
    16/32/64 blocks), made from the source's values at prepare time: later changes to the source
    are not seen; prepare it again. `spmm(prepared, B)` takes B of the prepared `dtype`.
    """

    format = "prepared"

    def __init__(self, layout, shape, dtype, *, values, index, tile_ptr, blocksize, tiles, row_blocks, stored):
        self.layout, self.shape, self.dtype = layout, tuple(shape), np.dtype(dtype)
        self.values, self.index, self.tile_ptr = values, index, tile_ptr
        self.blocksize, self.tiles, self.row_blocks, self.stored = blocksize, tiles, row_blocks, stored
        self.data = values          # what array_module and the operand checks look at
        self.plans = {}             # the kernel's launch plans, by column count and stream (backends)
        self.products = {}          # the products that calls bound (ops.spmm)

    @property
    def nbytes(self) -> int:
        """Bytes of the prepared arrays: what one product reads of the weight."""
        return int(self.values.nbytes + self.index.nbytes + self.tile_ptr.nbytes)

    @property
    def density(self) -> float:
        m, n = self.shape
        return self.stored / (m * n) if m and n else 0.0

    def arrays(self):
        return (("A.values", self.values), ("A.index", self.index), ("A.tile_ptr", self.tile_ptr))

    def __repr__(self) -> str:
        return (f"<sparsejl.Prepared {self.shape[0]}x{self.shape[1]}, layout={self.layout}"
                + (f", blocksize={self.blocksize}" if self.layout == "bsr" else "")
                + f", stored={self.stored}, dtype={self.dtype}, {self.nbytes / 2**20:.1f} MiB>")
