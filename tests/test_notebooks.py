"""Every lesson notebook runs top to bottom in a real Jupyter kernel, in fast mode; a cell that raises fails. Each has
an executed copy in lessons/executed/ (python lessons/render.py) whose cells are the source's."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))


def test_the_written_lessons_exist():
    numbers = [path.name[:2] for path in NOTEBOOKS]
    assert {"01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11"} <= set(numbers)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{path.name} has outputs"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_executes_in_fast_mode(path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MINISORA_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    # tqdm's notebook bars need ipywidgets (in the lessons and test extras); without it every bar warns
    assert "IProgress not found" not in printed, f"{path.name}: tqdm found no ipywidgets"


def _cells(notebook):
    return [(cell["cell_type"], cell.get("id"), "".join(cell["source"])) for cell in notebook["cells"]]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_executed_copy_is_the_lesson_as_it_is_now(path):
    """lessons/executed/ holds each lesson run top to bottom, for reading on GitHub: the same cells as the source,
    every code cell run, none failed. A lesson edited without `python lessons/render.py NN` fails here."""
    copy = ROOT / "lessons" / "executed" / path.name
    assert copy.exists(), f"no executed copy of {path.name}: run python lessons/render.py {path.name[:2]}"
    executed, source = json.loads(copy.read_text()), json.loads(path.read_text())
    assert _cells(executed) == _cells(source), f"{copy} is stale: run python lessons/render.py {path.name[:2]}"
    assert executed["metadata"]["minisora"]["mode"] in ("full", "fast")
    for cell in executed["cells"]:
        if cell["cell_type"] == "code":
            assert cell["execution_count"] is not None, f"{copy.name}: a cell did not run"
            assert all(output["output_type"] != "error" for output in cell["outputs"]), f"{copy.name}: a cell failed"
    assert copy.stat().st_size < 8_000_000, f"{copy.name} is {copy.stat().st_size / 1e6:.1f} MB; shrink its figures"
