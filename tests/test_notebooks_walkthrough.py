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
    # rec.diagnostics: every reconciled set is coherent
    line = next(ln for ln in text.splitlines() if ln.startswith("max coherence violation"))
    assert float(line.split()[-1]) < 1e-6


def test_fpp3_tourism_notebook(monkeypatch) -> None:
    text = _run("fpp3_tourism.ipynb", monkeypatch)
    assert "-> 425 series" in text
    assert "chosen by CV MASE:" in text


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebooks_show_their_plots(path) -> None:
    """Opened in Jupyter, a notebook shows its figures: outputs are committed, no Agg backend."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    source = "\n".join(c.source for c in code)
    assert "matplotlib.use(" not in source  # CI sets MPLBACKEND instead
    assert 'filterwarnings("ignore"' not in source  # warnings are shown, not hidden
    assert all(c.execution_count for c in code), "committed executed, with its outputs"
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the committed notebook shows its plots"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
