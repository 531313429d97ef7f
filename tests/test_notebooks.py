"""The notebooks are committed without outputs and execute top to bottom in a real kernel."""
import os
import pathlib

import pytest

import ipykernel  # noqa: F401  (the [jupyter] extra: a missing one fails, it does not skip)
import ipywidgets  # noqa: F401
import nbclient
import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def test_the_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    assert {"explorer.ipynb", "tour.ipynb", "prune-a-model.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a cell has outputs"
            assert cell.execution_count is None, f"{path.name}: a cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    # the kernel runs in a scratch folder, importing this checkout's sparsejl
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(nb, timeout=150, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "not every cell ran"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    if path.name == "explorer.ipynb":
        # the explorer is displayed as a live widget, and the plot as an image
        mimes = [set(o.get("data", {})) for c in code for o in c.outputs]
        assert any(WIDGET_MIME in m for m in mimes), "the explorer widget was not displayed"
        assert any("image/png" in m for m in mimes), "no plot was displayed"
        text = "".join(o.get("text", "") for c in code for o in c.outputs)
        assert "Done" in text and "break-even density" in text and "Loaded report" in text
    if path.name == "prune-a-model.ipynb":
        text = "".join(o.get("text", "") for c in code for o in c.outputs)
        assert "layers replaced" in text and "cosine to dense" in text and "speedup" in text
        assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), \
            "the time breakdown was not plotted"
    if path.name == "tour.ipynb":
        text = "".join(o.get("text", "") for c in code for o in c.outputs)
        assert "max |error|" in text and "CSR" in text and "sections:" in text
        assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), \
            "the report's plot was not displayed"
