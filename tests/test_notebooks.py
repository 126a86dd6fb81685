"""Execute the narrative notebooks headless (nbclient, the venv's ``python3`` ipykernel, Agg)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _execute(name: str, timeout: int = 300):
    """Run ``notebooks/<name>`` top to bottom; return the executed notebook.

    A last cell printing the kernel's ``sys.prefix`` is appended (in memory only) so the test can
    check that the kernel is this environment's Python, not some other ``python3`` on PATH.
    """
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": str(NOTEBOOKS)}}
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


def test_radon_bayesian_notebook(monkeypatch):
    """The PyMC notebook with 100 draws x 2 chains (committed outputs use 1000 x 4)."""
    pytest.importorskip("pymc")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HTSF_NOTEBOOK_DRAWS", "100")
    nb = _execute("radon_bayesian.ipynb", timeout=900)
    assert _outputs(nb, "error") == []
    text = "".join(o.get("text", "") for o in _outputs(nb, "stream"))
    assert "919 homes in 85 counties; 100 draws x 2 chains" in text
    # three models: partial-pooling posterior means near Gelman & Hill's, loosely (few draws)
    table = nb.cells[3].outputs[-1]["data"]["text/plain"].splitlines()
    row = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in table[1:]}
    pooled, unpooled, partial = row["intercept"]
    assert abs(partial - 1.46) < 0.08 and abs(pooled - 1.33) < 0.08
    assert abs(row["floor"][2] + 0.69) < 0.1 and abs(row["group_sd"][2] - 0.33) < 0.1
    largest = float(text.split("largest |REML - PyMC| over counties:")[1].split()[0])
    assert largest < 0.2  # every county's posterior mean near its REML estimate
    assert "varying slopes: divergences centred" in text


def test_temporal_hierarchies_notebook(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = _execute("temporal_hierarchies.ipynb")
    assert _outputs(nb, "error") == []
    text = "".join(o.get("text", "") for o in _outputs(nb, "stream"))
    assert "25 series" in text and "(28, 12)" in text
    annual, months = (ln for ln in text.splitlines() if ln.startswith(("annual", "sum of 12")))
    assert annual.split(":")[1].strip() == months.split(":")[1].strip()  # coherent in time


def test_exogenous_and_holidays_notebook(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = _execute("exogenous_and_holidays.ipynb")
    assert _outputs(nb, "error") == []
    text = "".join(o.get("text", "") for o in _outputs(nb, "stream"))
    # the worked check of the aggregation rules: each printed pair is equal
    for line in text.splitlines():
        if line.split(" ")[0] in ("promo", "temperature", "price", "holiday"):
            left, right = line.split()[1], line.split()[-1]
            assert float(left) == float(right), line
    assert "Texas Independence Day" in text
