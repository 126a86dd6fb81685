"""Exogenous regressors carried up the hierarchy by a declared rule.

:meth:`Hierarchy.aggregate(df, exog={...}) <htsforecast.Hierarchy.aggregate>` delegates here. A
regressor is either a column of the bottom-level data with a rule (``"price": "wmean"``), or a
:class:`LevelCovariate`: a frame given at one level of the keys (temperature per ``state`` x
month) that attaches to every node inside one value of those keys.

Rules (how a node's value is computed from the units below it; units are the node's bottom
series for a bottom-level column, the distinct key cells of a :class:`LevelCovariate`, each cell
counted once):

========  =================================================================================
sum       sum over the units (promotions run, population)
mean      unweighted mean over the units (temperature, price index)
min, max  extremes (``max`` of a 0/1 flag: "any child has it")
first     the units' common value; an error names the node and date where they differ
          (calendar flags, national policy variables)
wmean     mean weighted by the target (price weighted by units sold): ``S (y * x) / S y``.
          Where the weights of a node sum to zero at a date (no sales), the unweighted
          ``mean`` is used. Future frames (``target_col=None``) weight each bottom series by
          its mean target over the history last aggregated with this hierarchy.
========  =================================================================================

The values at a bottom node are always the data's own values (every rule of one unit is that
unit). Missing rules, unknown rules, non-numeric or non-finite regressors and missing cells raise
:class:`~htsforecast.errors.DataError` naming the column.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from htsforecast import validation as v
from htsforecast.errors import DataError

if TYPE_CHECKING:
    from htsforecast.models._protocol import Panel

__all__ = [
    "RULES",
    "ExogGrid",
    "ExogIgnoredWarning",
    "LevelCovariate",
    "aggregate_exog",
    "exog_frames",
    "exog_groups",
    "panel_with_exog",
    "series_exog",
    "uses_exog",
    "warn_ignored",
]

RULES = ("sum", "mean", "min", "max", "first", "wmean")
_RESERVED = ("unique_id", "ds", "y")
_BLOCK = 4_000_000  # values per reduceat block (memory bound for min/max/first)


@dataclass(frozen=True, eq=False)
class LevelCovariate:
    """A covariate defined at one level: values per (``on`` keys, date).

    Every node whose bottom series all lie inside one value of the ``on`` keys (e.g. ``state=MN``,
    ``state=MN/county=AITKIN``, ``state=MN/floor=basement`` for ``on="state"``) gets that value.
    Nodes spanning several values (``total``, ``floor=basement``) get ``rule`` applied over those
    values, each value counted once (``wmean`` weights each value by the node's target inside
    it), or NaN with ``rule=None``: the regressor is then not used at those nodes.

    Parameters
    ----------
    data : DataFrame
        Columns ``on``, the time column and the covariate (named like the ``exog`` key).
    on : str or sequence of str
        Key columns of the hierarchy the covariate is given for.
    rule : {"mean", "sum", "min", "max", "first", "wmean", "share"} or None
        Aggregate for the nodes above ``on``; ``None``: no value there. ``"share"`` is the
        mean over the node's bottom series rather than over the ``on`` values (for a 0/1
        indicator: the share of series where it is on).

    Examples
    --------
    >>> temp = pd.DataFrame({"state": ["MN", "WI"], "ds": ["2020-01-01"] * 2,
    ...                      "temperature": [-10.0, -6.0]})
    >>> hier.aggregate(df, exog={"temperature": LevelCovariate(temp, on="state")})
    ... # doctest: +SKIP
    """

    data: pd.DataFrame
    on: str | tuple[str, ...]
    rule: str | None = "mean"

    @property
    def keys(self) -> tuple[str, ...]:
        """The ``on`` key columns as a tuple."""
        return (self.on,) if isinstance(self.on, str) else tuple(self.on)


@dataclass(frozen=True, eq=False)
class ExogGrid:
    """What the hierarchy knows at aggregation time (passed in by ``Hierarchy.aggregate``).

    Attributes
    ----------
    S : csr_matrix (n_nodes, n_bottom)
    node_ids : tuple of str
    bottom_keys : DataFrame
        One row per bottom series (S's column order), key columns as str.
    codes, t_codes : ndarray of int (n_rows,)
        Bottom position and time position of each row of the data.
    grid : DatetimeIndex (T,)
    time_col : str
    """

    S: sp.csr_matrix
    node_ids: tuple[str, ...]
    bottom_keys: pd.DataFrame
    codes: np.ndarray
    t_codes: np.ndarray
    grid: pd.DatetimeIndex
    time_col: str


def aggregate_exog(
    exog: Mapping[str, Any],
    df: pd.DataFrame,
    g: ExogGrid,
    target: np.ndarray | None,
    history_weights: np.ndarray | None,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Every regressor at every node.

    Parameters
    ----------
    exog : mapping column -> rule or LevelCovariate
    df : DataFrame
        The bottom-level data given to ``aggregate``.
    g : ExogGrid
    target : ndarray (n_bottom, T) or None
        The bottom target on the grid (the ``wmean`` weights); None for future frames.
    history_weights : ndarray (n_bottom,) or None
        Mean bottom target of the last history aggregated (``wmean`` weights of future frames).

    Returns
    -------
    values : dict column -> ndarray (n_nodes, T)
    weights : ndarray (n_bottom,) or None
        Mean bottom target of this history (to keep for future frames), None when ``target`` is.
    """
    specs = _check_specs(exog, df, g)
    if target is not None and any(_rule(s) == "wmean" for s in specs.values()):
        _check_weights(target, g)
    weights = target
    if target is None and any(_rule(s) == "wmean" for s in specs.values()):
        weights = _future_weights(specs, history_weights, g)
    out = {}
    for name, spec in specs.items():
        if isinstance(spec, LevelCovariate):
            out[name] = _covariate(name, spec, g, weights)
        else:
            X = _bottom_values(name, df, g)
            out[name] = _reduce(name, g.S, X, spec, g, weights)
    history = None if target is None else target.mean(axis=1)
    return out, history


# ----------------------------------------------------------------------------- specs


def _rule(spec: Any) -> str | None:
    return spec.rule if isinstance(spec, LevelCovariate) else spec


def _check_specs(exog: Any, df: pd.DataFrame, g: ExogGrid) -> dict[str, Any]:
    """Validate the ``exog`` mapping: known rules, columns present, no name clashes."""
    if not isinstance(exog, Mapping):
        names = list(exog) if isinstance(exog, (list, tuple, set)) else [exog]
        raise DataError(
            f"exog must map each regressor column to a rule, got {type(exog).__name__} "
            f"{format_list(names)}: no rule for {format_list(names)}. Example: "
            "exog={'price': 'wmean', 'promo': 'sum'}; rules: " + ", ".join(RULES) + "."
        )
    taken = {*_RESERVED, *g.bottom_keys.columns, g.time_col}
    specs = {}
    for name, spec in exog.items():
        if not isinstance(name, str) or name in taken:
            raise DataError(
                f"exog column {name!r} clashes with a key, time or output column "
                f"({format_list(sorted(taken))}); rename it."
            )
        if hasattr(spec, "to_covariate"):  # e.g. calendar.CountryHolidays
            spec = spec.to_covariate(name, g)
        if isinstance(spec, LevelCovariate):
            _check_covariate(name, spec, g)
            if spec.rule not in (None, "share"):
                _check_rule(name, spec.rule)
        else:
            _check_rule(name, spec)
            v.require_columns(df, [name], what="data (exog column)")
        specs[name] = spec
    return specs


def _check_rule(name: str, rule: Any) -> None:
    if rule is None or rule == "":
        raise DataError(
            f"exog column '{name}' has no aggregation rule; give one of {', '.join(RULES)} "
            f"(e.g. exog={{'{name}': 'mean'}})."
        )
    if rule not in RULES:
        raise DataError(
            f"exog column '{name}': unknown rule {rule!r}; use one of {', '.join(RULES)}."
        )


def format_list(items: Any) -> str:
    """``'a', 'b'`` for messages."""
    return ", ".join(repr(x) for x in items)


def _floats(col: pd.Series, what: str) -> np.ndarray:
    """A numeric or boolean column as float64; anything else is an error naming ``what``."""
    if pd.api.types.is_bool_dtype(col):
        col = col.astype(float)
    if not pd.api.types.is_numeric_dtype(col):
        raise DataError(
            f"{what} must be numeric, got dtype {col.dtype}; encode it as numbers first (e.g. "
            "0/1 for a flag, pd.to_numeric for numbers stored as text)."
        )
    return col.to_numpy(dtype=float)


def _numeric(name: str, col: pd.Series, where: str) -> np.ndarray:
    """A regressor column as float64; errors name the column and the bad rows."""
    values = _floats(col, f"exog column '{name}' ({where})")
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(
            f"exog column '{name}' ({where}) has {int(bad.sum())} NaN/inf value(s), at row(s) "
            f"{v.format_examples(col.index[bad])}. Regressors need a value at every row; "
            "htsforecast never fills them silently."
        )
    return values


# ----------------------------------------------------------------------------- bottom columns


def _bottom_values(name: str, df: pd.DataFrame, g: ExogGrid) -> np.ndarray:
    """The column on the (bottom x grid) array; a missing cell is an error naming it."""
    values = _numeric(name, df[name], "bottom-level data")
    X = np.full((g.S.shape[1], len(g.grid)), np.nan)
    X[g.codes, g.t_codes] = values
    missing = np.isnan(X)
    if missing.any():
        b, t = np.nonzero(missing)
        ids = g.node_ids[-g.S.shape[1] :]
        cells = [f"{ids[i]} @ {g.grid[j].date()}" for i, j in zip(b[:5], t[:5])]
        raise DataError(
            f"exog column '{name}' has no value in {int(missing.sum())} (series, date) cell(s) "
            f"that fill='zero' added, e.g. {v.format_examples(cells)}. Give those rows a "
            "value in the data (a filled zero target says nothing about the regressor)."
        )
    return X


def _check_weights(target: np.ndarray, g: ExogGrid) -> None:
    if (target < 0).any():
        b = np.flatnonzero((target < 0).any(axis=1))
        ids = [g.node_ids[-g.S.shape[1] :][i] for i in b]
        raise DataError(
            f"rule 'wmean' weights by the target, which is negative in series "
            f"{v.format_examples(ids)}; use 'mean' or a non-negative target."
        )


def _future_weights(
    specs: Mapping[str, Any], history_weights: np.ndarray | None, g: ExogGrid
) -> np.ndarray:
    names = [n for n, s in specs.items() if _rule(s) == "wmean"]
    if history_weights is None or len(history_weights) != g.S.shape[1]:
        raise DataError(
            f"exog column(s) {format_list(names)} use rule 'wmean', which weights by the target; "
            "a frame without target (target_col=None) uses each bottom series' mean target over "
            "the history, so aggregate the history with this same Hierarchy first."
        )
    return np.repeat(history_weights[:, None], len(g.grid), axis=1)


# ----------------------------------------------------------------------------- reduction


def _reduce(
    name: str, M: sp.csr_matrix, X: np.ndarray, rule: str, g: ExogGrid, W: np.ndarray | None
) -> np.ndarray:
    """Apply ``rule`` over the units of each node: ``M`` (n_nodes x n_units) 0/1, ``X`` (units, T).

    ``wmean`` needs ``W`` (n_bottom, T) and ``M == S`` (bottom units) or a covariate already
    expanded to the bottom series.
    """
    counts = np.asarray(M.sum(axis=1)).ravel()[:, None]
    if rule == "sum":
        return np.asarray(M @ X)
    if rule == "mean":
        return np.asarray(M @ X) / counts
    if rule == "wmean":
        assert W is not None
        num, den = np.asarray(g.S @ (W * X)), np.asarray(g.S @ W)
        mean = np.asarray(g.S @ X) / np.asarray(g.S.sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), mean)
    lo = _reduceat(np.minimum, M, X)
    if rule == "min":
        return lo
    hi = _reduceat(np.maximum, M, X)
    if rule == "first":
        _check_equal(name, lo, hi, g)
    return hi


def _reduceat(ufunc: np.ufunc, M: sp.csr_matrix, X: np.ndarray) -> np.ndarray:
    """``ufunc`` over each row's units, in row blocks bounded to ``_BLOCK`` values."""
    out = np.empty((M.shape[0], X.shape[1]))
    rows_per = max(1, _BLOCK // max(1, X.shape[1] * max(1, M.nnz // max(1, M.shape[0]))))
    for start in range(0, M.shape[0], rows_per):
        stop = min(M.shape[0], start + rows_per)
        lo, hi = M.indptr[start], M.indptr[stop]
        out[start:stop] = ufunc.reduceat(X[M.indices[lo:hi]], M.indptr[start:stop] - lo, axis=0)
    return out


def _check_equal(name: str, lo: np.ndarray, hi: np.ndarray, g: ExogGrid) -> None:
    diff = ~np.isclose(lo, hi, rtol=1e-12, atol=0.0)
    if diff.any():
        n, t = np.nonzero(diff)
        cells = [f"{g.node_ids[i]} @ {g.grid[j].date()}" for i, j in zip(n[:5], t[:5])]
        raise DataError(
            f"exog column '{name}' uses rule 'first' (one value shared by all children), but "
            f"children differ at {int(diff.sum())} (node, date) cell(s), e.g. "
            f"{v.format_examples(cells)}. Use 'mean', 'max' or 'sum' instead."
        )


# ----------------------------------------------------------------------------- level covariates


def _check_covariate(name: str, cov: LevelCovariate, g: ExogGrid) -> None:
    if not isinstance(cov.data, pd.DataFrame):
        raise DataError(f"LevelCovariate for '{name}': data must be a DataFrame.")
    unknown = [k for k in cov.keys if k not in g.bottom_keys.columns]
    if not cov.keys or unknown:
        raise DataError(
            f"LevelCovariate for '{name}': on={list(cov.keys)} must name key columns of the "
            f"hierarchy ({format_list(g.bottom_keys.columns)}); unknown: {format_list(unknown)}."
        )
    v.require_columns(
        cov.data, [*cov.keys, g.time_col, name], what=f"LevelCovariate data for '{name}'"
    )


def _covariate(name: str, cov: LevelCovariate, g: ExogGrid, W: np.ndarray | None) -> np.ndarray:
    """The covariate at every node (see :class:`LevelCovariate`)."""
    keys = list(cov.keys)
    cell_of, cells = pd.factorize(pd.MultiIndex.from_frame(g.bottom_keys[keys]))
    Xc = _cell_values(name, cov, cells, g)
    n_bottom = g.S.shape[1]
    G = sp.csr_matrix((np.ones(n_bottom), (cell_of, np.arange(n_bottom))),
                      shape=(len(cells), n_bottom))  # fmt: skip
    Q = (g.S @ G.T).tocsr()
    Q.data[:] = 1.0
    single = np.diff(Q.indptr) == 1
    if cov.rule is None:
        out = np.full((g.S.shape[0], len(g.grid)), np.nan)
        out[single] = Xc[Q.indices[Q.indptr[:-1][single]]]
        return out
    if cov.rule in ("wmean", "share"):  # over the bottom series, not the cells
        return _reduce(name, g.S, Xc[cell_of], "mean" if cov.rule == "share" else "wmean", g, W)
    return _reduce(name, Q, Xc, cov.rule, g, W)


def _cell_values(name: str, cov: LevelCovariate, cells: pd.MultiIndex, g: ExogGrid) -> np.ndarray:
    """The covariate on (cells x grid); missing (cell, date) pairs are an error naming them."""
    data = cov.data
    where = f"LevelCovariate on {list(cov.keys)}"
    values = _numeric(name, data[name], where)
    dates = pd.DatetimeIndex(v.to_datetime(data, g.time_col))
    key = pd.MultiIndex.from_frame(data[list(cov.keys)].astype(str))
    c = cells.get_indexer(key)
    t = g.grid.get_indexer(dates)
    keep = (c >= 0) & (t >= 0)
    cell_t = c[keep] * len(g.grid) + t[keep]
    if len(np.unique(cell_t)) < len(cell_t):
        raise DataError(
            f"'{name}' ({where}) has duplicated ({', '.join(cov.keys)}, {g.time_col}) rows; "
            "give one value per key and date."
        )
    X = np.full((len(cells), len(g.grid)), np.nan)
    X[c[keep], t[keep]] = values[keep]
    if np.isnan(X).any():
        ci, ti = np.nonzero(np.isnan(X))
        shown = [
            "/".join(f"{k}={val}" for k, val in zip(cov.keys, cells[i])) + f" @ {g.grid[j].date()}"
            for i, j in zip(ci[:5], ti[:5])
        ]
        raise DataError(
            f"'{name}' ({where}) has no value for {len(ci)} (key, date) pair(s) the hierarchy "
            f"needs, e.g. {v.format_examples(shown)}. Add those rows."
        )
    return X


# ----------------------------------------------------------------------------- forecast time


class ExogIgnoredWarning(UserWarning):
    """Some models cannot use exogenous regressors and forecast without them."""


def uses_exog(model: Any) -> bool:
    """Whether a forecaster uses the panel's regressors (its ``uses_exog`` attribute)."""
    return bool(getattr(model, "uses_exog", False))


def panel_with_exog(panel: Panel, Y: pd.DataFrame, X_future: pd.DataFrame, h: int) -> Panel:
    """``panel`` carrying the regressors of ``Y`` (history) and ``X_future`` (the h steps).

    The regressors are the columns of ``X_future`` besides ``unique_id`` and ``ds``. A column
    that is NaN over a node's whole history (``LevelCovariate(rule=None)`` above its level) is
    not used at that node; any other NaN, a missing future row or a NaN future value is a
    :class:`DataError` naming the column, nodes and dates (never forward-filled).
    """
    v.require_columns(X_future, ["unique_id", "ds"], what="X_future")
    names = tuple(c for c in X_future.columns if c not in ("unique_id", "ds"))
    if not names:
        raise DataError("X_future has no regressor columns besides unique_id and ds.")
    v.require_columns(Y, list(names), what="Y (the regressors named in X_future)")
    uid = np.repeat(panel.ids, panel.lengths)
    rows = _row_index(Y, "Y").get_indexer(pd.MultiIndex.from_arrays([uid, panel.ds]))
    X = np.column_stack([_history_column(c, Y[c], rows) for c in names])
    _check_partial_history(panel, X, names)
    fds = panel.future_ds(h)
    key = pd.MultiIndex.from_arrays([np.repeat(panel.ids, h), fds.ravel()])
    pos = _row_index(X_future, "X_future").get_indexer(key)
    missing = pos < 0
    if missing.any():
        raise DataError(
            f"X_future has no row for {int(missing.sum())} (node, date) pair(s) of the "
            f"forecast horizon, e.g. {_cells(key, missing)}. Give every node a row for each of "
            f"the h={h} dates after its last observation."
        )
    Xf = np.column_stack([_floats(X_future[c], f"X_future column '{c}'") for c in names])[pos]
    Xf = Xf.reshape(panel.n_series, h, len(names))
    available = ~np.isnan(X[panel.indptr[:-1]]) if len(X) else np.ones((0, len(names)), bool)
    for k, name in enumerate(names):
        bad = np.isnan(Xf[:, :, k]) & available[:, [k]]
        if bad.any():
            raise DataError(
                f"X_future column '{name}' is NaN at {int(bad.sum())} (node, date) pair(s) of the "
                f"horizon, e.g. {_cells(key, bad.ravel())}. Future regressor values must be "
                "given; htsforecast never forward-fills them."
            )
        Xf[:, :, k] = np.where(available[:, [k]], Xf[:, :, k], np.nan)
    return replace(panel, X=X, X_future=Xf, exog=names)


def _row_index(frame: pd.DataFrame, what: str) -> pd.MultiIndex:
    ids = frame["unique_id"].astype(str).to_numpy(dtype=object)
    ds = v.to_datetime(frame, "ds").to_numpy(dtype="datetime64[ns]")
    index = pd.MultiIndex.from_arrays([ids, ds])
    if what == "X_future" and index.has_duplicates:
        dup = index.duplicated(keep="first")
        raise DataError(
            f"X_future has {int(dup.sum())} duplicated (unique_id, ds) row(s), e.g. "
            f"{_cells(index, dup)}; give one row per node and date."
        )
    return index


def _cells(index: pd.MultiIndex, mask: np.ndarray) -> str:
    shown = [f"{u} @ {pd.Timestamp(d).date()}" for u, d in index[np.flatnonzero(mask)[:5]]]
    return v.format_examples(shown) + (f" ({int(mask.sum())} in all)" if mask.sum() > 5 else "")


def _history_column(name: str, col: pd.Series, rows: np.ndarray) -> np.ndarray:
    """A regressor of ``Y`` as float64 in panel order (NaN allowed here, checked per node)."""
    values = _floats(col, f"regressor column '{name}' of Y")[rows]
    if np.isinf(values).any():
        raise DataError(f"regressor column '{name}' of Y has inf values.")
    return values


def _check_partial_history(panel: Panel, X: np.ndarray, names: tuple[str, ...]) -> None:
    """A regressor is NaN over a node's whole history (not used there) or nowhere in it."""
    series = np.repeat(np.arange(panel.n_series), panel.lengths)
    for k, name in enumerate(names):
        nan = np.isnan(X[:, k])
        count = np.bincount(series, weights=nan, minlength=panel.n_series)
        partial = (count > 0) & (count < panel.lengths)
        if partial.any():
            bad = nan & partial[series]
            key = pd.MultiIndex.from_arrays([np.repeat(panel.ids, panel.lengths), panel.ds])
            raise DataError(
                f"regressor column '{name}' of Y is NaN at {int(bad.sum())} (node, date) "
                f"pair(s), e.g. {_cells(key, bad)}, in node(s) "
                f"{v.format_examples(panel.ids[partial])}. Give every date a value (a node "
                "may lack a regressor only over its whole history)."
            )


def exog_groups(panel: Panel) -> list[tuple[np.ndarray, list[int]]]:
    """Series positions grouped by the regressors available to them: ``[(idx, columns)]``."""
    if panel.X is None or panel.n_series == 0:
        return [(np.arange(panel.n_series), [])]
    available = ~np.isnan(panel.X[panel.indptr[:-1]])
    patterns, inverse = np.unique(available, axis=0, return_inverse=True)
    return [
        (np.flatnonzero(inverse.ravel() == j), list(np.flatnonzero(p)))
        for j, p in enumerate(patterns)
    ]


def series_exog(panel: Panel, i: int, h: int) -> dict[str, pd.DataFrame]:
    """``{"X": history, "X_future": h steps}`` of series ``i``: the regressors available there."""
    assert panel.X is not None and panel.X_future is not None
    rows = slice(panel.indptr[i], panel.indptr[i + 1])
    cols = [k for k in range(len(panel.exog)) if not np.isnan(panel.X[panel.indptr[i], k])]
    names = [panel.exog[k] for k in cols]
    return {
        "X": pd.DataFrame(panel.X[rows][:, cols], columns=names),
        "X_future": pd.DataFrame(panel.X_future[i][:, cols], columns=names),
    }


def exog_frames(panel: Panel, columns: list[int], h: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """statsforecast's ``df`` (``unique_id, ds, y`` + regressors) and ``X_df`` (h steps)."""
    assert panel.X is not None and panel.X_future is not None
    df = panel.to_frame()
    X_df = pd.DataFrame({"unique_id": np.repeat(panel.ids, h), "ds": panel.future_ds(h).ravel()})
    for k in columns:
        df[panel.exog[k]] = panel.X[:, k]
        X_df[panel.exog[k]] = panel.X_future[:, :, k].ravel()
    return df, X_df


def warn_ignored(models: Mapping[str, Any], exog: tuple[str, ...]) -> None:
    """One notice naming the models that forecast without the regressors."""
    ignored = [f"'{name}' ({model!r})" for name, model in models.items() if not uses_exog(model)]
    if ignored:
        warnings.warn(
            f"model(s) {', '.join(ignored)} cannot use exogenous regressors and ignore "
            f"{format_list(exog)}.",
            ExogIgnoredWarning,
            stacklevel=3,
        )
