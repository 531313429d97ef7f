"""The Python side of the C entry points against the Julia side: every entry point, every slot.

Both sides are made from SparseJL's src/abi.txt; these tests check that they read it alike (the
slot numbers Julia's compiled jobs use are the positions Python packs), and that every call site
in sparsejl names the slots of the entry point it packs. Julia's own test checks that each job
reads exactly the slots of its row (julia/SparseJL/test/runtests.jl).
"""

import ast
from pathlib import Path

import numpy as np
import pytest

from sparsejl import abi, runtime

ROOT = Path(__file__).resolve().parents[1]

# Julia's view: each entry point's slots with the numbers its compiled jobs read them at
JULIA_TABLE = """
let A = SparseJL.ABI
    rows = String[]
    for t in A.TYPES
        push!(rows, join(("type", t.name, t.dtype, t.cpu, t.gpu), " "))
    end
    for e in A.ENTRY_POINTS
        layout = getfield(A.LAYOUTS, Symbol(e.name))
        slots = [string(a ? "*" : "", n, "=", getfield(layout, Symbol(n))) for (n, a) in zip(e.slots, e.addresses)]
        push!(rows, join(("entry", e.name, e.bootstrap, join(e.types, ","), join(slots, ",")), " "))
    end
    join(rows, "\\n")
end
"""


def python_table():
    types, entries = abi.table()
    rows = [f"type {t['name']} {t['dtype']} {str(t['cpu']).lower()} {str(t['gpu']).lower()}" for t in types.values()]
    for e in entries.values():
        slots = [f"{'*' if a else ''}{n}={i + 2}" for i, (n, a) in enumerate(zip(e.slots, e.addresses))]
        rows.append(f"entry {e.name} {str(e.bootstrap).lower()} {','.join(e.types)} {','.join(slots)}")
    return rows


@pytest.fixture(scope="module")
def rt():
    reason = runtime.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return runtime.get()


def test_python_and_julia_read_the_same_table(rt):
    julia = [" ".join(row.split()) for row in rt.eval(JULIA_TABLE).splitlines()]
    python = [" ".join(row.split()) for row in python_table()]
    assert python == julia
    assert len([r for r in python if r.startswith("entry")]) == 22


def test_pack_puts_named_slots_in_the_table_order():
    e = abi.entry("csr_spgemm_symbolic")
    values = {name: i for i, name in enumerate(reversed(e.slots))}
    assert e.pack(**values) == tuple(values[name] for name in e.slots)
    with pytest.raises(TypeError):
        e.pack(**{**values, "nnz": 1})
    missing = dict(values)
    del missing["room"]
    with pytest.raises(TypeError):
        e.pack(**missing)
    with pytest.raises(TypeError):
        e.pack(*values.values())  # by name only


def test_pack_arrays_only_where_the_addresses_come_last():
    spmm = abi.entry("bsr_spmm")
    ints, arrays = spmm.pack_arrays(**{name: name for name in spmm.slots})
    assert ints == ("mb", "kb", "n", "b", "nnzb") and arrays == ("indptr", "indices", "data", "B", "C")
    assert not hasattr(abi.entry("csr_spgemm_numeric"), "pack_arrays")   # room follows the addresses


def test_keys():
    assert abi.entry("csr_spmm").key(np.float32, np.dtype("int64"), np.float64, np.float16) == \
        "csr_spmm:Float32,Int64,Float64,Float16"
    assert abi.entry("cuda_init").key() == "cuda_init"
    with pytest.raises(TypeError, match="takes 2 types"):
        abi.entry("csr_spgemm_symbolic").key(np.int32)
    with pytest.raises(TypeError, match="no SparseJL type for dtype complex128"):
        abi.julia_type(np.complex128)
    with pytest.raises(KeyError, match="no entry point"):
        abi.entry("csr_spmv")


def _pack_calls(tree):
    """(entry name, keyword names, has **) of every `abi.entry("name").pack(...)` call, also through a
    variable assigned `abi.entry("name")` earlier in the same function."""
    def literal_entry(node):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "entry"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            return node.args[0].value
        return None

    for scope in [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        assigned = []   # (line, variable, entry name)
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                entry = literal_entry(node.value)
                if entry:
                    assigned.append((node.lineno, node.targets[0].id, entry))
        for node in ast.walk(scope):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("pack", "pack_arrays")):
                continue
            owner = node.func.value
            entry = literal_entry(owner)
            if entry is None and isinstance(owner, ast.Name):
                before = [(line, e) for line, var, e in assigned if var == owner.id and line <= node.lineno]
                entry = max(before)[1] if before else None
            if entry:
                yield entry, {k.arg for k in node.keywords if k.arg}, any(k.arg is None for k in node.keywords)


def test_every_call_site_names_the_slots_of_its_entry_point():
    """Covers the GPU call sites too, which only a GPU machine runs."""
    seen = set()
    for path in sorted((ROOT / "sparsejl").rglob("*.py")):
        for name, given, spread in _pack_calls(ast.parse(path.read_text())):
            slots = set(abi.entry(name).slots)
            where = f"{path.relative_to(ROOT)}: {name}"
            assert given <= slots, f"{where} names no such slot: {sorted(given - slots)}"
            assert spread or given == slots, f"{where} leaves out {sorted(slots - given)}"
            seen.add(name)
    # the GPU entry points all have a packing call site with a literal name
    assert {e for e in abi.table()[1] if e.startswith("cuda_")} <= seen
