"""The notebooks in notebooks/ run top to bottom without an error; their cells assert the key facts.

Each notebook is executed in a fresh kernel on a copy in a temporary folder, with the same code
as `python notebooks/execute.py` (loaded from that file, so the two never drift).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ["01_compare_real_checkpoints.ipynb", "02_investigate_disguised_copy.ipynb"]


def _execute_module():
    spec = importlib.util.spec_from_file_location("notebooks_execute", NOTEBOOKS / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_notebooks_are_there() -> None:
    assert [p.name for p in _execute_module().notebooks()] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_notebook_carries_outputs(name: str) -> None:
    """Committed with outputs from a clean top-to-bottom run, without errors or timing metadata."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not [c.id for c in nb.cells if "execution" in c.metadata]


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs(name: str, tmp_path: Path) -> None:
    copy = tmp_path / name
    shutil.copy(NOTEBOOKS / name, copy)
    nb = _execute_module().execute(copy, cwd=tmp_path)  # CellExecutionError (with the traceback) on failure
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert [p.name for p in tmp_path.iterdir()] == [name]  # wrote nothing into its working directory
