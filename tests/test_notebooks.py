"""Execute the narrative notebooks headless (nbclient, the venv's ``python3`` ipykernel, Agg)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _execute(name: str):
    """Run ``notebooks/<name>`` top to bottom; return the executed notebook.

    A last cell printing the kernel's ``sys.prefix`` is appended (in memory only) so the test can
    check that the kernel is this environment's Python, not some other ``python3`` on PATH.
    """
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return nb


def _outputs(nb, kind: str) -> list:
    return [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == kind
    ]


def test_radon_partial_pooling_notebook(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # inherited by the kernel process
    nb = _execute("radon_partial_pooling.ipynb")
    assert _outputs(nb, "error") == []
    assert nb.cells[-1].outputs[0]["text"].strip() == sys.prefix  # the venv's own kernel
    text = "".join(o.get("text", "") for o in _outputs(nb, "stream"))
    assert "919 homes in 85 counties" in text
    # the summary table shows the Gelman & Hill partial-pooling numbers
    table = nb.cells[3].outputs[0]["data"]["text/plain"]
    assert "1.462" in table and "-0.693" in table and "0.328" in table
