"""Plots: forecasts with intervals per node, every model for one node, accuracy, the S matrix.

matplotlib is imported inside each function (it is only needed when plotting) and nothing here
calls ``plt.show()``, so the functions are safe under the non-interactive ``Agg`` backend. Every
function takes an optional ``ax`` (or ``axes``) and returns what it drew on, so callers can
compose figures and save them with ``fig.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from htsforecast.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_forecasts", "plot_models", "plot_accuracy", "plot_S", "pick_nodes"]


def _need_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} is missing column(s) {missing}; it has {list(df.columns)}. "
            "Pass the tidy frames returned by forecast()/reconcile()."
        )


def pick_nodes(hier: Any, per_level: int = 1, Y: pd.DataFrame | None = None) -> list[str]:
    """The ``per_level`` largest nodes of every level, top level first.

    Parameters
    ----------
    hier : Hierarchy
        A fitted hierarchy (its ``levels``).
    per_level : int
        Nodes to take from each level.
    Y : DataFrame, optional
        Long frame ``unique_id, ds, y``. Nodes are ranked by the mean of their history (largest
        first, ties by id), so a panel shows a series that carries the level rather than its
        alphabetically first member. Without ``Y`` the first ``per_level`` ids are taken.

    Returns
    -------
    list of str
    """
    if int(per_level) < 1:
        raise DataError(f"pick_nodes: per_level must be a positive integer, got {per_level!r}.")
    levels: dict[str, list[str]] = hier.levels
    if Y is None:
        return [node for ids in levels.values() for node in list(ids)[: int(per_level)]]
    _need_columns(Y, ["unique_id", "y"], "Y")
    size = Y.groupby("unique_id", sort=False)["y"].mean()
    out = []
    for ids in levels.values():
        mean = size.reindex(list(ids)).fillna(-np.inf)  # nodes without history rank last
        ranked = sorted(ids, key=lambda n: (-mean[n], n))
        out += ranked[: int(per_level)]
    return out


def _format_dates(ax: Axes) -> None:
    """Date ticks that do not overlap at any frequency (daily to yearly)."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _series_label(model: str, method: str | None) -> str:
    return model if method is None else f"{model} / {method}"


def _draw_node(
    ax: Axes,
    node: str,
    hist: pd.DataFrame,
    fc: pd.DataFrame,
    interval: int | None,
) -> None:
    ax.plot(hist["ds"], hist["y"], color="black", lw=1.2, label="actual")
    group_cols = ["model", "method"] if "method" in fc.columns else ["model"]
    for key, part in fc.groupby(group_cols, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        label = _series_label(str(key[0]), str(key[1]) if len(key) > 1 else None)
        part = part.sort_values("ds")
        (line,) = ax.plot(part["ds"], part["yhat"], lw=1.2, label=label)
        lo, hi = f"yhat_lo_{interval}", f"yhat_hi_{interval}"
        if interval is not None and lo in part.columns and part[lo].notna().any():
            ax.fill_between(
                part["ds"], part[lo], part[hi], color=line.get_color(), alpha=0.15, lw=0
            )
    ax.set_title(node, fontsize=9)
    ax.tick_params(labelsize=7)
    _format_dates(ax)


def plot_forecasts(
    Y: pd.DataFrame,
    forecasts: pd.DataFrame,
    nodes: Sequence[str] | int | None = None,
    *,
    hier: Any | None = None,
    methods: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    interval: int | None = 80,
    history: int | None = 24,
    axes: Sequence[Axes] | None = None,
    ncols: int = 2,
) -> Figure:
    """History, point forecasts and prediction intervals, one panel per node, methods overlaid.

    Parameters
    ----------
    Y : DataFrame
        Long frame ``unique_id, ds, y`` (history, and test actuals if you have them).
    forecasts : DataFrame
        Tidy forecasts ``unique_id, ds, model, [method,] yhat[, yhat_lo_L, yhat_hi_L]``.
    nodes : list of str or int, optional
        Node ids to draw, or a number ``k``: the ``k`` largest nodes (mean of their history in
        ``Y``) of every level of ``hier``. Default 1: the largest node of each level.
    hier : Hierarchy, optional
        Needed when ``nodes`` is not a list of ids.
    methods, models : list of str, optional
        Restrict the overlaid forecasts (default all).
    interval : int or None
        Interval level to shade (``yhat_lo_{interval}``/``yhat_hi_{interval}``); None for none.
    history : int or None
        Number of most recent history points per panel (None = all).
    axes : sequence of Axes, optional
        Draw into these (one per node) instead of a new figure.
    ncols : int
        Columns of the panel grid of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _need_columns(Y, ["unique_id", "ds", "y"], "Y")
    _need_columns(forecasts, ["unique_id", "ds", "model", "yhat"], "forecasts")
    nodes = _resolve_nodes(nodes, hier, Y)
    unknown = sorted(set(nodes) - set(forecasts["unique_id"]))
    if unknown:
        raise DataError(f"plot_forecasts: no forecasts for node(s) {unknown[:5]}; check the ids.")
    fc = forecasts[forecasts["unique_id"].isin(nodes)]  # the drawn nodes first: a small copy
    if methods is not None and "method" in fc.columns:
        fc = fc[fc["method"].isin(methods)]
    if models is not None:
        fc = fc[fc["model"].isin(models)]
    axes = _make_axes(len(nodes), ncols) if axes is None else list(axes)
    if len(axes) < len(nodes):
        raise DataError(f"plot_forecasts: {len(nodes)} nodes but only {len(axes)} axes given.")
    for ax, node in zip(axes, nodes):
        hist = Y[Y["unique_id"] == node].sort_values("ds")
        if history is not None:
            hist = hist.tail(history + int(fc["ds"].nunique()))
        _draw_node(ax, node, hist, fc[fc["unique_id"] == node], interval)
    for ax in axes[len(nodes) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="best")
    fig: Any = axes[0].figure  # a Figure (matplotlib types it Figure | SubFigure)
    fig.tight_layout()
    return fig


def _resolve_nodes(nodes: Sequence[str] | int | None, hier: Any, Y: pd.DataFrame) -> list[str]:
    if nodes is not None and not isinstance(nodes, (int, np.integer)):
        if isinstance(nodes, str):
            return [nodes]
        return list(nodes)
    if hier is None:
        raise DataError(
            "plot_forecasts: pass `nodes` (a list of ids) or a fitted `hier` to pick the "
            "largest nodes of each level from."
        )
    return pick_nodes(hier, 1 if nodes is None else int(nodes), Y)


def _make_axes(n: int, ncols: int) -> list[Axes]:
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axs = plt.subplots(nrows, ncols, figsize=(5 * ncols, 2.6 * nrows), squeeze=False)
    return list(axs.ravel())


def plot_accuracy(
    table: pd.DataFrame,
    metric: str = "mase",
    *,
    levels: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Grouped bars of one metric: levels on the x axis, one bar per model x method.

    Parameters
    ----------
    table : DataFrame
        Tidy accuracy table ``level, model, method, metric, value`` (from :func:`cross_validate`).
    metric : str
        Which metric to draw.
    levels : list of str, optional
        Level order (default: order of first appearance in ``table``).
    ax : Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    _need_columns(table, ["level", "model", "method", "metric", "value"], "table")
    sub = table[table["metric"] == metric]
    if sub.empty:
        raise DataError(
            f"plot_accuracy: metric {metric!r} not in the table; it has "
            f"{sorted(table['metric'].unique())}."
        )
    sub = sub.assign(series=sub["model"].astype(str) + " / " + sub["method"].astype(str))
    order = list(levels) if levels is not None else list(dict.fromkeys(sub["level"]))
    wide = sub.pivot_table(index="level", columns="series", values="value", sort=False)
    wide = wide.reindex(order)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 1.3 * len(order)), 3.5))
    n = wide.shape[1]
    width = 0.8 / max(n, 1)
    x = np.arange(len(order))
    for i, col in enumerate(wide.columns):
        ax.bar(x + (i - (n - 1) / 2) * width, wide[col].to_numpy(), width, label=col)
    ax.set_xticks(x, order, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), ncols=max(1, n // 12))
    fig: Any = ax.figure
    fig.tight_layout()
    return ax


def plot_S(
    hier_or_S: Any,
    *,
    ax: Axes | None = None,
    max_nodes: int = 200_000,
    summary_above: int = 200,
) -> Axes:
    """Picture of the summing matrix S (rows = nodes, columns = bottom series).

    Up to ``summary_above`` rows every nonzero is drawn (a spy plot). Larger matrices, where one
    pixel per row would give an unreadable strip, get a summary instead: a block picture of S
    (each level a band of the same height whatever its number of nodes; the grey shade is the
    share of nonzeros in each block) with the number of nodes per level in the labels, and, on
    a new figure, a bar chart of nodes per level beside it.

    Parameters
    ----------
    hier_or_S : Hierarchy or matrix
        A fitted Hierarchy (uses ``S`` and ``levels`` to label level blocks) or a dense/sparse S.
    ax : Axes, optional
        Draw into this axes (the summary then omits the bar chart).
    max_nodes : int
        Refuse matrices with more rows (guards against a mistaken input).
    summary_above : int
        Row count above which the summary is drawn instead of the spy plot.

    Returns
    -------
    matplotlib.axes.Axes
        The axes holding the picture of S.
    """
    from scipy import sparse

    S = getattr(hier_or_S, "S", hier_or_S)
    S = sparse.csr_matrix(S) if not sparse.issparse(S) else S.tocsr()
    if S.shape[0] > max_nodes:
        raise DataError(
            f"plot_S: S has {S.shape[0]} rows, more than max_nodes={max_nodes}; "
            "plot a sub-hierarchy or raise max_nodes."
        )
    levels = getattr(hier_or_S, "levels", None) or {"nodes": range(S.shape[0])}
    sizes = {str(name): len(ids) for name, ids in levels.items()}
    if S.shape[0] > summary_above:
        return _plot_S_summary(S, sizes, ax)
    return _plot_S_spy(S, sizes if hasattr(hier_or_S, "levels") else None, ax)


def _plot_S_spy(S: Any, sizes: dict[str, int] | None, ax: Axes | None) -> Axes:
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4 * S.shape[0] / max(S.shape[1], 1) ** 0.5 / 3 + 2))
    ax.spy(S, markersize=max(1.0, 60 / max(S.shape)), aspect="auto")
    if sizes:
        start = 0
        ticks = []
        for n in sizes.values():
            ticks.append(start + (n - 1) / 2)
            start += n
            ax.axhline(start - 0.5, color="grey", lw=0.5)
        ax.set_yticks(ticks, list(sizes), fontsize=7)
    ax.set_xlabel("bottom series")
    ax.set_title(f"S ({S.shape[0]} x {S.shape[1]})", fontsize=9)
    return ax


def _block_density(block: Any, n_rows: int, n_cols: int) -> np.ndarray:
    """Share of nonzeros of a sparse block in an (n_rows, n_cols) grid of cells."""
    coo = block.tocoo()
    r = (coo.row * n_rows) // max(block.shape[0], 1)
    c = (coo.col * n_cols) // max(block.shape[1], 1)
    counts = np.zeros((n_rows, n_cols))
    np.add.at(counts, (r, c), 1.0)
    cell_r = np.bincount((np.arange(block.shape[0]) * n_rows) // block.shape[0], minlength=n_rows)
    cell_c = np.bincount((np.arange(block.shape[1]) * n_cols) // block.shape[1], minlength=n_cols)
    return counts / np.maximum(np.outer(cell_r, cell_c), 1)


def _plot_S_summary(S: Any, sizes: dict[str, int], ax: Axes | None) -> Axes:
    import matplotlib.pyplot as plt

    if ax is None:
        fig, (bar_ax, ax) = plt.subplots(
            1, 2, figsize=(10, 0.45 * len(sizes) + 2.5), width_ratios=[1, 2.2]
        )
        names = list(sizes)[::-1]
        bar_ax.barh(names, [sizes[n] for n in names], color="C0")
        bar_ax.set_xscale("log")
        for i, n in enumerate(names):
            bar_ax.text(sizes[n], i, f" {sizes[n]:,}", va="center", fontsize=8)
        bar_ax.set_xlabel("nodes (log scale)")
        bar_ax.set_title("nodes per level", fontsize=9)
        bar_ax.tick_params(labelsize=8)
        bar_ax.set_xlim(right=max(sizes.values()) * 8)
    n_cols = min(S.shape[1], 300)
    start, ticks = 0, []
    for k, rows in enumerate(sizes.values()):
        density = _block_density(S[start : start + rows], min(rows, 40), n_cols)
        ax.imshow(
            density, extent=(0, S.shape[1], k + 1, k), aspect="auto", cmap="Greys",
            vmin=0, vmax=max(float(density.max()), 1e-12), interpolation="nearest",
        )  # fmt: skip
        ax.axhline(k + 1, color="C3", lw=0.6)
        ticks.append(k + 0.5)
        start += rows
    ax.set_ylim(len(sizes), 0)
    ax.set_xlim(0, S.shape[1])
    ax.set_yticks(ticks, [f"{name} ({n:,})" for name, n in sizes.items()], fontsize=8)
    ax.set_xlabel("bottom series (in S column order)")
    ax.set_title(
        f"S ({S.shape[0]:,} x {S.shape[1]:,}): block picture, darker = more nonzeros per block",
        fontsize=9,
    )
    cast(Any, ax.figure).tight_layout()
    return ax


def plot_models(
    Y: pd.DataFrame,
    forecasts: pd.DataFrame,
    node: str = "total",
    *,
    method: str | Mapping[str, str] | None = None,
    models: Sequence[str] | None = None,
    interval: int | None = 80,
    history: int | None = 24,
    ax: Axes | None = None,
) -> Axes:
    """Every model's forecast of one node on one axes (by default the total).

    Parameters
    ----------
    Y : DataFrame
        Long frame ``unique_id, ds, y``.
    forecasts : DataFrame
        Tidy forecasts ``unique_id, ds, model, [method,] yhat[, yhat_lo_L, yhat_hi_L]``.
    node : str
        The node to draw.
    method : str or dict model -> method, optional
        Which reconciliation method to show for each model. Needed when ``forecasts`` has more
        than one method (e.g. ``"mint_shrink"``, or ``{"ets": "mint_shrink", "theta": "bu"}``).
    models : list of str, optional
        The models to overlay (default all).
    interval : int or None
        Interval level to shade; None for none.
    history : int or None
        Most recent history points shown (None = all).
    ax : Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    _need_columns(Y, ["unique_id", "ds", "y"], "Y")
    _need_columns(forecasts, ["unique_id", "ds", "model", "yhat"], "forecasts")
    fc = forecasts[forecasts["unique_id"] == node]
    if fc.empty:
        raise DataError(f"plot_models: no forecasts for node {node!r}; check the id.")
    if models is not None:
        fc = fc[fc["model"].isin(models)]
    fc = _one_method_per_model(fc, method)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.6))
    hist = Y[Y["unique_id"] == node].sort_values("ds")
    if history is not None:
        hist = hist.tail(history + int(fc["ds"].nunique()))
    _draw_node(ax, node, hist, fc, interval)
    if method is not None:
        shown = (
            method if isinstance(method, str) else ", ".join(f"{k}: {v}" for k, v in method.items())
        )
        ax.set_title(f"{node}  (method {shown})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    cast(Any, ax.figure).tight_layout()
    return ax


def _one_method_per_model(fc: pd.DataFrame, method: str | Mapping[str, str] | None):
    if "method" not in fc.columns:
        return fc
    if method is None:
        found = sorted(fc["method"].unique())
        if len(found) > 1:
            raise DataError(
                f"plot_models: the forecasts hold several methods {found}; pass method='...' "
                "(or a dict model -> method) to choose the one to show per model."
            )
        return fc
    pick = method if isinstance(method, Mapping) else dict.fromkeys(fc["model"].unique(), method)
    keep = fc["method"].to_numpy() == fc["model"].map(pick).to_numpy()
    out = fc[keep]
    if out.empty:
        raise DataError(
            f"plot_models: no forecasts for method {method!r}; the frame has methods "
            f"{sorted(fc['method'].unique())}."
        )
    return out.drop(columns="method")
