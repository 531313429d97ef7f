"""What every backend provides: one `Backend` per backend module, named `BACKEND` there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Backend:
    """A backend: where it runs, what it takes, whether it can run here, and its two products.

    `spmm(A, B, out)` writes A @ B into `out` (the promoted dtype, C-contiguous) and returns it;
    `A` is a validated view, `B` a C-contiguous matrix on the backend's device. `spgemm(A, B)`
    returns a canonical sparse product. The products of a linear layer with weight `W` (m×k), for
    backends that have them (else None): `linear(W, X, bias, out)` writes X (n×k) @ W.T + bias
    into `out` (n×m); `linear_input_grad(W, dY, out)` writes dY (n×m) @ W into `out` (n×k);
    `sddmm(P, X, Y, out)` writes the entries of X.T @ Y (X n×m, Y n×k) at the stored positions of
    `P` into `out`, shaped as `P.data`. Dense operands are C-contiguous and share W's dtype; bias
    is None or m values. `prepare(A, dtype)`, where a backend has it, turns a fully checked view
    into a prepared weight (formats.Prepared) that its `spmm` takes. `checks_structure`: the
    backend checks indptr/indices itself on every call (Julia), so the caller makes only the
    cheap checks.
    """

    name: str
    device: str                                   # "cpu" or "gpu"
    checks_structure: bool
    value_dtypes: Callable[[], tuple]
    availability: Callable[[], Optional[str]]     # None, or why it cannot run here
    spmm: Callable
    spgemm: Callable
    linear: Optional[Callable] = None
    linear_input_grad: Optional[Callable] = None
    sddmm: Optional[Callable] = None
    prepare: Optional[Callable] = None
