"""The core's imports follow docs/architecture.md: each module imports only the modules below it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sparsejl"

# module -> the package modules it may import (prefixes; "backends.*" is any backend module)
ALLOWED = {
    "julia.find": [],
    "julia.transport": ["_handover"],
    "julia.boot": ["julia.find", "julia.transport"],
    "julia": [],
    "abi": ["julia.find"],
    "runtime": ["julia", "abi"],
    "backends._cuda": [],
    "backends.protocol": [],
    "formats": ["backends._cuda", "interop"],
    "interop": ["backends._cuda"],
    "backends": ["backends."],
    "ops": ["interop", "formats", "backends"],
    "layer_ops": ["interop", "formats", "backends", "ops"],
    "torch.ops": ["interop", "layer_ops", "formats"],
    "torch.inference": ["interop"],
    "torch.linear": ["torch.ops", "torch.inference"],
    "torch.sparsify": ["torch"],
    "torch": ["torch.linear", "torch.sparsify"],
    "catalogue": [],
    "prune": [],
    "": ["backends", "formats", "ops", "layer_ops", "runtime", "prune", "catalogue"],   # sparsejl/__init__
}
GPU_PARTS = ["formats", "backends._cuda", "backends._gpu_conversions", "backends._gpu_linear", "backends._cusparse",
             "backends._cukernel", "backends._bsr_kernels", "backends._decode_kernels"]
ALLOWED["backends._cukernel"] = GPU_PARTS + ["backends._culaunch"]
BACKEND_MODULE = GPU_PARTS + ["backends.protocol", "abi", "runtime"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str):
    """Every package module `path` imports, anywhere in the file, as a name relative to sparsejl."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                mod = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("sparsejl"):
                mod = node.module[len("sparsejl."):] if node.module != "sparsejl" else ""
            else:
                continue
            for alias in node.names:   # `from . import abi` imports the module abi
                sub = f"{mod}.{alias.name}" if mod else alias.name
                where = PACKAGE / sub.replace(".", "/")
                is_module = where.is_dir() or any(where.parent.glob(where.name + ".*"))
                yield sub if is_module else mod
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sparsejl."):
                    yield alias.name[len("sparsejl."):]


def _allowed(name: str):
    if name in ALLOWED:
        return ALLOWED[name]
    if name in GPU_PARTS:
        return GPU_PARTS
    if name.startswith("backends."):
        return BACKEND_MODULE
    return None


def test_the_core_imports_only_downward():
    core = [p for p in PACKAGE.rglob("*.py")
            if not {"bench", "widgets"} & set(p.relative_to(PACKAGE).parts)]
    assert len(core) > 20
    wrong = []
    for path in core:
        name = _module_name(path)
        allowed = _allowed(name)
        assert allowed is not None, f"{name} is not in docs/architecture.md's table"
        for imported in _imports(path, name):
            if imported == name or imported.startswith(name + ".") and name:
                continue
            if not any(imported == a or imported.startswith(a.rstrip(".") + ".") or
                       (a.endswith(".") and imported.startswith(a)) for a in allowed):
                wrong.append(f"{name} imports {imported}")
    assert wrong == []


def test_the_rule_catches_an_upward_import(tmp_path):
    """The reader sees imports inside functions too: formats importing ops would be caught."""
    src = tmp_path / "formats.py"
    src.write_text("def f():\n    from .ops import spmm\n    from . import runtime\n")
    found = list(_imports(src, "formats"))
    assert found == ["ops", "runtime"]
    assert not any(i.startswith(a) for i in found for a in _allowed("formats"))


# the record format, the curve analysis and the explorer's parts (docs/architecture.md, "Front end")
FRONT_END = {
    "bench.records": ["catalogue"],
    "bench.curves": ["bench.records"],
    "bench.plot": ["bench.curves", "bench.records"],
    "bench.usermatrix": ["prune", "bench.sweep", "bench.matrices"],
    "widgets.runner": ["bench.sweep", "bench.env"],
    "widgets.view": ["bench.curves", "bench.records", "bench.plot"],
    "widgets.controls": ["catalogue", "bench.peers", "bench.sweep", "bench.usermatrix"],
    "bench.model_predict": ["catalogue", "bench.matrices", "bench.sweep", "bench.verify"],
    "widgets.model_view": ["catalogue", "bench.model_predict"],
    "widgets.explorer": ["catalogue", "bench.curves", "bench.records", "widgets.controls", "widgets.runner",
                         "widgets.view", "widgets.model_view"],
    "widgets.app": ["widgets.explorer"],
    "widgets": ["widgets.explorer"],
}


def test_the_explorer_parts_import_only_what_the_table_allows():
    """Controls, runner and view know nothing of each other; only the explorer composes them.
    Nothing converts records by parsing labels: everything reads bench/records.py's fields."""
    wrong = []
    for name, allowed in FRONT_END.items():
        path = PACKAGE / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = PACKAGE / name.replace(".", "/") / "__init__.py"
        for imported in _imports(path, name):
            if imported != name and imported not in allowed:
                wrong.append(f"{name} imports {imported}")
    assert wrong == []
    assert sorted(p.stem for p in (PACKAGE / "widgets").glob("*.py")) == \
        ["__init__", "app", "controls", "explorer", "model_view", "runner", "view"]
