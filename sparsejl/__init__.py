"""sparsejl: sparse × dense (SpMM) and sparse × sparse (SpGEMM) products in CSR and BSR, run by Julia."""

from . import catalogue, prune
from .backends import BackendStatus, backends
from .formats import BSR, CSR, Prepared, check_format
from .layer_ops import linear, linear_input_grad, sddmm
from .ops import prepare, spgemm, spmm
from .runtime import JuliaError, JuliaNotFound

__version__ = "0.1.0"
__all__ = ["spmm", "spgemm", "prepare", "Prepared", "linear", "linear_input_grad", "sddmm", "backends",
           "BackendStatus", "CSR", "BSR", "check_format", "JuliaError", "JuliaNotFound",
           "catalogue", "prune"]
