"""Plots: forecasts with intervals per node, accuracy by level and method, the S matrix.

matplotlib is imported inside each function (it is only needed when plotting) and nothing here
calls ``plt.show()``, so the functions are safe under the non-interactive ``Agg`` backend. Every
function takes an optional ``ax`` (or ``axes``) and returns what it drew on, so callers can
compose figures and save them with ``fig.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from htsforecast.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_forecasts", "plot_accuracy", "plot_S", "pick_nodes"]


def _need_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} is missing column(s) {missing}; it has {list(df.columns)}. "
            "Pass the tidy frames returned by forecast()/reconcile()."
        )


def pick_nodes(hier: Any, per_level: int = 1) -> list[str]:
    """The first ``per_level`` node ids of every level of a fitted hierarchy, top to bottom."""
    levels: dict[str, list[str]] = hier.levels
    return [node for ids in levels.values() for node in list(ids)[:per_level]]


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


def plot_forecasts(
    Y: pd.DataFrame,
    forecasts: pd.DataFrame,
    nodes: Sequence[str] | None = None,
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
    nodes : list of str, optional
        Node ids to draw. Default: the first node of every level of ``hier`` (one panel per level).
    hier : Hierarchy, optional
        Needed only when ``nodes`` is None.
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
    if nodes is None:
        if hier is None:
            raise DataError("plot_forecasts: pass `nodes` or a fitted `hier` to pick them from.")
        nodes = pick_nodes(hier)
    unknown = sorted(set(nodes) - set(forecasts["unique_id"]))
    if unknown:
        raise DataError(f"plot_forecasts: no forecasts for node(s) {unknown[:5]}; check the ids.")
    fc = forecasts
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
    fig = axes[0].figure
    fig.tight_layout()
    return fig


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
    ax.figure.tight_layout()
    return ax


def plot_S(hier_or_S: Any, *, ax: Axes | None = None, max_nodes: int = 2000) -> Axes:
    """Spy plot of the summing matrix S (rows = nodes, columns = bottom series).

    Accepts a fitted Hierarchy (uses ``S``, ``levels`` to label level blocks) or a dense/sparse
    matrix. Refuses matrices with more than ``max_nodes`` rows, which would be unreadable.
    """
    import matplotlib.pyplot as plt
    from scipy import sparse

    S = getattr(hier_or_S, "S", hier_or_S)
    S = sparse.csr_matrix(S) if not sparse.issparse(S) else S.tocsr()
    if S.shape[0] > max_nodes:
        raise DataError(
            f"plot_S: S has {S.shape[0]} rows, more than max_nodes={max_nodes}; "
            "plot a sub-hierarchy or raise max_nodes."
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4 * S.shape[0] / max(S.shape[1], 1) ** 0.5 / 3 + 2))
    ax.spy(S, markersize=max(1.0, 60 / max(S.shape)), aspect="auto")
    levels = getattr(hier_or_S, "levels", None)
    if levels:
        start = 0
        ticks, labels = [], []
        for name, ids in levels.items():
            ticks.append(start + (len(ids) - 1) / 2)
            labels.append(name)
            start += len(ids)
            ax.axhline(start - 0.5, color="grey", lw=0.5)
        ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel("bottom series")
    ax.set_title(f"S ({S.shape[0]} x {S.shape[1]})", fontsize=9)
    return ax
