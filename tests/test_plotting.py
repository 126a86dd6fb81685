from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from htsforecast import plotting
from htsforecast.errors import DataError

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NODES = ["total", "g=a", "g=b"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    ds = pd.date_range("2020-01-01", periods=12, freq="MS")
    fds = pd.date_range("2021-01-01", periods=3, freq="MS")
    Y = pd.concat(
        [
            pd.DataFrame({"unique_id": n, "ds": ds, "y": np.arange(12.0) + i})
            for i, n in enumerate(NODES)
        ]
    )
    rows = []
    for n in NODES:
        for method in ["base", "bu", "ols"]:
            yhat = np.full(3, 10.0)
            rows.append(
                pd.DataFrame(
                    {
                        "unique_id": n,
                        "ds": fds,
                        "model": "ets",
                        "method": method,
                        "yhat": yhat,
                        "yhat_lo_80": yhat - 1,
                        "yhat_hi_80": yhat + 1,
                    }
                )
            )
    return Y, pd.concat(rows, ignore_index=True)


def test_plot_forecasts_one_panel_per_node_methods_overlaid(frames, tmp_path) -> None:
    Y, fc = frames
    fig = plotting.plot_forecasts(Y, fc, NODES, ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3  # 2x2 grid, the 4th panel hidden
    for ax, node in zip(visible, NODES):
        assert ax.get_title() == node
        assert len(ax.lines) == 1 + 3  # actual + one line per method
        assert len(ax.collections) == 3  # one shaded interval per method
    labels = [t.get_text() for t in visible[0].get_legend().get_texts()]
    assert labels == ["actual", "ets / base", "ets / bu", "ets / ols"]
    path = tmp_path / "fc.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000


def test_plot_forecasts_filters_and_picks_nodes_from_hierarchy(frames) -> None:
    Y, fc = frames
    hier = SimpleNamespace(levels={"total": ["total"], "g": ["g=a", "g=b"]})
    fig = plotting.plot_forecasts(Y, fc, hier=hier, methods=["bu"], interval=None, history=4)
    assert [ax.get_title() for ax in fig.axes] == ["total", "g=a"]
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.collections) == 0
    assert len(ax.lines[0].get_xdata()) == 4 + 3  # history points shown (history + horizon)


def test_plot_forecasts_errors(frames) -> None:
    Y, fc = frames
    with pytest.raises(DataError, match="no forecasts for node"):
        plotting.plot_forecasts(Y, fc, ["nope"])
    with pytest.raises(DataError, match="missing column"):
        plotting.plot_forecasts(Y.drop(columns="y"), fc, NODES)
    with pytest.raises(DataError, match="nodes"):
        plotting.plot_forecasts(Y, fc)


def test_plot_accuracy_bars(tmp_path) -> None:
    table = pd.DataFrame(
        [
            (lvl, "ets", meth, metric, v)
            for lvl in ["total", "g", "all"]
            for meth, v in [("base", 1.0), ("bu", 2.0)]
            for metric in ["mase", "rmse"]
        ],
        columns=["level", "model", "method", "metric", "value"],
    )
    ax = plotting.plot_accuracy(table, "mase")
    assert len(ax.patches) == 3 * 2
    assert sorted({p.get_height() for p in ax.patches}) == [1.0, 2.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["total", "g", "all"]
    ax.figure.savefig(tmp_path / "acc.png")
    with pytest.raises(DataError, match="not in the table"):
        plotting.plot_accuracy(table, "crps")


def test_plot_S_spy(tmp_path) -> None:
    S = sparse.csr_matrix(np.array([[1, 1], [1, 0], [0, 1]]))
    hier = SimpleNamespace(S=S, levels={"total": ["total"], "g": ["g=a", "g=b"]})
    ax = plotting.plot_S(hier)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["total", "g"]
    assert "3 x 2" in ax.get_title()
    ax.figure.savefig(tmp_path / "S.png")
    ax2 = plotting.plot_S(S.toarray())
    assert ax2.get_title() == "S (3 x 2)"
    with pytest.raises(DataError, match="max_nodes"):
        plotting.plot_S(S, max_nodes=2)


def test_plot_S_with_a_real_hierarchy() -> None:
    from htsforecast.hierarchy import Hierarchy

    ds = pd.date_range("2020-01-01", periods=3, freq="MS")
    df = pd.DataFrame(
        [(s, c, d, 1.0) for s, c in [("A", "x"), ("A", "y"), ("B", "z")] for d in ds],
        columns=["state", "city", "ds", "y"],
    )
    hier = Hierarchy.from_formula("state / city")
    hier.aggregate(df)
    ax = plotting.plot_S(hier)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(hier.levels)
    assert ax.get_title() == f"S ({hier.n_nodes} x {hier.n_bottom})"
