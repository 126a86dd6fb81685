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
import matplotlib.pyplot as plt

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
    # the largest node of each level by mean history (g=b is g=a + 1), not the first id
    assert [ax.get_title() for ax in fig.axes] == ["total", "g=b"]
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


def test_pick_nodes_largest_per_level_by_mean_history() -> None:
    hier = SimpleNamespace(levels={"total": ["total"], "g": ["g=a", "g=b", "g=c", "g=d"]})
    means = {"total": 10.0, "g=a": 1.0, "g=b": 5.0, "g=c": 3.0, "g=d": 5.0}
    Y = pd.DataFrame(
        [(n, d, m + s) for n, m in means.items() for d, s in [(0, -1.0), (1, 1.0)]],
        columns=["unique_id", "ds", "y"],
    )
    assert plotting.pick_nodes(hier, 2, Y) == ["total", "g=b", "g=d"]  # tie broken by id
    assert plotting.pick_nodes(hier, 3, Y) == ["total", "g=b", "g=d", "g=c"]
    assert plotting.pick_nodes(hier, 2) == ["total", "g=a", "g=b"]  # without Y: first ids
    with pytest.raises(DataError, match="per_level"):
        plotting.pick_nodes(hier, 0, Y)


def test_plot_forecasts_nodes_as_a_count_per_level(frames) -> None:
    Y, fc = frames
    hier = SimpleNamespace(levels={"total": ["total"], "g": ["g=a", "g=b"]})
    fig = plotting.plot_forecasts(Y, fc, nodes=2, hier=hier, methods=["bu"])
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["total", "g=b", "g=a"]


def _overlaps(labels) -> bool:
    boxes = [t.get_window_extent() for t in labels if t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_daily_date_ticks_do_not_overlap() -> None:
    ds = pd.date_range("2023-01-01", periods=400, freq="D")
    fds = pd.date_range(ds[-1] + pd.Timedelta(days=1), periods=28, freq="D")
    Y = pd.DataFrame({"unique_id": "total", "ds": ds, "y": np.sin(np.arange(400.0))})
    fc = pd.DataFrame({"unique_id": "total", "ds": fds, "model": "m", "yhat": 0.0})
    fig = plotting.plot_forecasts(Y, fc, ["total", "total", "total"], history=None, ncols=3)
    fig.canvas.draw()
    for ax in fig.axes[:3]:
        labels = [t for t in ax.get_xticklabels() if t.get_text()]
        assert 2 <= len(labels) <= 7
        assert not _overlaps(labels)
    # matplotlib's default date axis overlaps on the same panel width (the bug this fixes)
    fig2, axs = plt.subplots(1, 3, figsize=(15, 2.6))
    for ax in axs:
        ax.plot(ds.append(fds), np.arange(428.0))
    fig2.tight_layout()
    fig2.canvas.draw()
    assert _overlaps(axs[0].get_xticklabels())


def test_plot_S_summary_above_200_nodes_is_readable(tmp_path) -> None:
    n_bottom = 300
    S = sparse.vstack(
        [
            sparse.csr_matrix(np.ones((1, n_bottom))),
            sparse.kron(sparse.eye(30), np.ones((1, 10))).tocsr(),
            sparse.eye(n_bottom, format="csr"),
        ]
    ).tocsr()
    ids = ["total"] + [f"g={i}" for i in range(30)] + [f"g/b={i}" for i in range(n_bottom)]
    hier = SimpleNamespace(S=S, levels={"total": ids[:1], "g": ids[1:31], "g/b": ids[31:]})
    ax = plotting.plot_S(hier)
    fig = ax.figure
    assert len(fig.axes) == 2  # nodes-per-level bars + block picture
    bars = fig.axes[0]
    assert sorted(p.get_width() for p in bars.patches) == [1, 30, 300]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["total (1)", "g (30)", "g/b (300)"]
    assert "331 x 300" in ax.get_title()
    # one band per level, all of the same height, each normalised to its darkest block
    images = ax.get_images()
    assert len(images) == 3
    assert images[0].get_array().shape == (1, 300) and images[0].get_array().max() == 1.0
    path = tmp_path / "S.png"
    fig.savefig(path, dpi=100)
    from matplotlib.image import imread

    height, width = imread(path).shape[:2]
    assert height < 800 and width <= 1000  # not a 6,000-pixel strip
    # up to summary_above rows the spy plot stays
    assert len(plotting.plot_S(hier, summary_above=400).figure.axes) == 1


def test_plot_models_overlays_every_model_for_one_node(frames) -> None:
    Y, fc = frames
    fc2 = pd.concat([fc, fc.assign(model="theta", yhat=fc["yhat"] + 5)], ignore_index=True)
    ax = plotting.plot_models(Y, fc2, "total", method="bu")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["actual", "ets", "theta"]
    assert [line.get_ydata()[0] for line in ax.lines[1:]] == [10.0, 15.0]
    assert "bu" in ax.get_title()
    ax = plotting.plot_models(Y, fc2, "g=a", method={"ets": "ols", "theta": "base"})
    assert len(ax.lines) == 3
    with pytest.raises(DataError, match="several methods"):
        plotting.plot_models(Y, fc2, "total")
    with pytest.raises(DataError, match="no forecasts for method"):
        plotting.plot_models(Y, fc2, "total", method="mint")
    with pytest.raises(DataError, match="no forecasts for node"):
        plotting.plot_models(Y, fc2, "nope", method="bu")
