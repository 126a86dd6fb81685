"""Execute the radon walkthrough and the fpp3 tourism notebooks headless, so they never rot."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name: str, monkeypatch) -> str:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert [o for o in outputs if o.output_type == "error"] == []
    return "".join(o.get("text", "") for o in outputs if o.output_type == "stream")


def test_radon_walkthrough_notebook(monkeypatch) -> None:
    text = _run("radon_walkthrough.ipynb", monkeypatch)
    assert "-> 176 series" in text
    assert "best overall:" in text
    # every reconciled method is coherent: printed incoherence of reconciled rows is ~0
    rows = [ln.split() for ln in text.splitlines() if "max incoherence" in ln]
    assert len(rows) == 2 * 9
    assert all(float(r[4]) < 1e-6 for r in rows if r[1] != "base")


def test_fpp3_tourism_notebook(monkeypatch) -> None:
    text = _run("fpp3_tourism.ipynb", monkeypatch)
    assert "-> 425 series" in text
    assert "chosen by CV MASE:" in text
