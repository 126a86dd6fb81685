"""The :class:`Hierarchy`: nodes, levels and the sparse summing matrix ``S``.

A hierarchy is described once by a formula (``"(state / county) * floor"``); the nodes are the key
combinations that occur in the data. ``S`` maps bottom series to every node:
``y_all = S @ y_bottom``, with the bottom rows last so that ``S[-n_bottom:]`` is the identity.

References
----------
Hyndman, R. J. & Athanasopoulos, G. (2021). *Forecasting: Principles and Practice*, 3rd ed.,
ch. 11 "Forecasting hierarchical or grouped time series".
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from htsforecast import validation as v
from htsforecast._exog import ExogGrid, aggregate_exog
from htsforecast._formula import ParsedFormula, parse_formula
from htsforecast._panel import ValidPanel
from htsforecast.errors import DataError, DataWarning, HierarchyError

__all__ = ["Hierarchy", "AGGREGATED", "TOTAL"]

AGGREGATED = "<aggregated>"
TOTAL = "total"


@dataclass(frozen=True)
class _Structure:
    """The nodes of a fitted hierarchy (immutable)."""

    S: sp.csr_matrix
    node_ids: tuple[str, ...]
    levels: dict[str, list[str]]
    keys: pd.DataFrame
    bottom_keys: pd.DataFrame  # one row per bottom node, key columns as str, index = bottom id


class Hierarchy:
    """A hierarchical or grouped structure of time series.

    Create one with :meth:`from_formula` (then :meth:`aggregate` your bottom-level data) or
    :meth:`from_nixtla`. After that it exposes ``S``, ``node_ids``, ``bottom_ids``, ``levels``,
    ``level_of``, ``keys`` and ``is_strict``.

    Examples
    --------
    >>> hier = Hierarchy.from_formula("(state / county) * floor")
    >>> Y = hier.aggregate(df, time_col="ds", target_col="y", freq="MS")  # doctest: +SKIP
    >>> hier.S.shape  # doctest: +SKIP
    (n_nodes, n_bottom)
    """

    def __init__(self, formula: ParsedFormula | None = None) -> None:
        self._formula = formula
        self._structure: _Structure | None = None
        self._exog_weights: np.ndarray | None = None  # history mean target ('wmean', future)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_formula(cls, formula: str) -> Hierarchy:
        """Build an (unfitted) hierarchy from a formula: ``/`` nests, ``*`` crosses.

        Parameters
        ----------
        formula : str
            E.g. ``"state / county"``, ``"(state / county) * floor"``,
            ``"gender * legal * state"``, ``"(state / zone / region) * purpose"``.

        Raises
        ------
        FormulaError
            Naming the position and the reason of the problem.
        """
        return cls(parse_formula(formula))

    @classmethod
    def from_nixtla(cls, S_df: pd.DataFrame, tags: Mapping[str, Sequence[str]]) -> Hierarchy:
        """Build a hierarchy from hierarchicalforecast's ``(S_df, tags)``.

        Parameters
        ----------
        S_df : DataFrame
            ``unique_id`` column (or index) plus one 0/1 column per bottom series.
        tags : dict
            Level name -> node ids of that level.
        """
        if "unique_id" in S_df.columns:
            S_df = S_df.set_index("unique_id")
        bottom_ids = [str(c) for c in S_df.columns]
        ids = [str(i) for i in S_df.index]
        if len(set(ids)) != len(ids):
            raise HierarchyError("S_df has duplicated unique_id rows.")
        values = S_df.to_numpy()
        if not np.isin(values, [0, 1]).all():
            raise HierarchyError("S_df must contain only 0/1 entries.")
        missing = [b for b in bottom_ids if b not in set(ids)]
        if missing:
            raise HierarchyError(
                f"S_df columns {v.format_examples(missing)} have no row of their own in S_df."
            )
        order = [i for i in ids if i not in set(bottom_ids)] + bottom_ids
        S = sp.csr_matrix(S_df.loc[order].to_numpy(dtype=float))
        if (S[-len(bottom_ids) :] != sp.identity(len(bottom_ids), format="csr")).nnz:
            raise HierarchyError("the rows of S_df's bottom series are not the identity.")
        levels = {str(k): [str(x) for x in vals] for k, vals in tags.items()}
        _check_levels_cover(levels, order)
        keys = pd.DataFrame(
            {"level": [_level_lookup(levels)[i] for i in order]},
            index=pd.Index(order, name="unique_id"),
        )
        hier = cls(None)
        hier._structure = _Structure(S, tuple(order), levels, keys, pd.DataFrame(index=bottom_ids))
        return hier

    # ------------------------------------------------------------------ attributes
    @property
    def formula(self) -> str | None:
        """The formula this hierarchy was built from (None for :meth:`from_nixtla`)."""
        return None if self._formula is None else self._formula.formula

    @property
    def columns(self) -> tuple[str, ...]:
        """Key columns named in the formula, in formula order."""
        return () if self._formula is None else self._formula.columns

    @property
    def level_names(self) -> list[str]:
        """Level names, top to bottom (``"total"``, ``"state"``, ``"state/county"`` ...)."""
        if self._structure is not None:
            return list(self._structure.levels)
        assert self._formula is not None
        return [_level_name(lv) for lv in self._formula.levels]

    def _fitted(self) -> _Structure:
        if self._structure is None:
            raise HierarchyError(
                "this Hierarchy has no nodes yet: call hier.aggregate(df) on bottom-level data "
                "first (nodes are the key combinations that occur in the data)."
            )
        return self._structure

    @property
    def S(self) -> sp.csr_matrix:
        """Summing matrix, scipy CSR of shape (n_nodes, n_bottom), bottom rows last."""
        return self._fitted().S

    @property
    def node_ids(self) -> list[str]:
        """All node ids, level by level from the total to the bottom."""
        return list(self._fitted().node_ids)

    @property
    def bottom_ids(self) -> list[str]:
        """Bottom node ids (the last ``n_bottom`` entries of :attr:`node_ids`)."""
        st = self._fitted()
        return list(st.node_ids[-st.S.shape[1] :])

    @property
    def n_nodes(self) -> int:
        """Number of nodes (rows of ``S``)."""
        return self._fitted().S.shape[0]

    @property
    def n_bottom(self) -> int:
        """Number of bottom series (columns of ``S``)."""
        return self._fitted().S.shape[1]

    @property
    def levels(self) -> dict[str, list[str]]:
        """Level name -> node ids, top to bottom (Nixtla's ``tags``)."""
        return {k: list(val) for k, val in self._fitted().levels.items()}

    @property
    def level_of(self) -> dict[str, str]:
        """Node id -> level name."""
        return _level_lookup(self._fitted().levels)

    @property
    def keys(self) -> pd.DataFrame:
        """Key table: index = node id, a column per key (``"<aggregated>"`` where summed over)
        and a ``level`` column."""
        return self._fitted().keys.copy()

    @property
    def is_strict(self) -> bool:
        """True when the hierarchy is a tree: each level partitions the bottom series and refines
        the level above it. Grouped structures (crossings) are not strict."""
        st = self._fitted()
        return _is_strict(st.S, st.levels, st.node_ids)

    def __repr__(self) -> str:
        head = f"Hierarchy({self.formula!r})" if self._formula else "Hierarchy(from_nixtla)"
        if self._structure is None:
            return f"{head} [no nodes yet]"
        sizes = ", ".join(f"{k}: {len(val)}" for k, val in self._structure.levels.items())
        return f"{head} with {self.n_nodes} nodes ({sizes})"

    # ------------------------------------------------------------------ aggregation
    def aggregate(
        self,
        df: pd.DataFrame,
        time_col: str = "ds",
        target_col: str | None = "y",
        freq: str | None = None,
        fill: str | None = None,
        exog: Mapping[str, Any] | None = None,
        as_panel: bool = False,
    ) -> pd.DataFrame | ValidPanel:
        """Sum bottom-level data to every node of the hierarchy.

        Parameters
        ----------
        df : DataFrame
            Bottom-level long data: one row per key combination and time, with every formula
            column, ``time_col`` and ``target_col``.
        time_col, target_col : str
            Names of the date and value columns. ``target_col=None`` aggregates a frame without
            target, e.g. future regressor values for ``forecast(..., X_future=...)``.
        freq : str, optional
            Pandas frequency alias (``"MS"``, ``"QS"``, ``"D"`` ...). When given, every date must
            lie on it and the time grid is every period from the first to the last date. Without
            it, the grid is the set of dates that occur in the data.
        fill : {None, "zero"}
            Gap policy. ``None`` (default): a bottom series missing any date of the grid is an
            error naming it. ``"zero"``: missing (series, date) cells count as 0, the right choice
            when absence means "nothing happened" (sales, counts).
        exog : mapping column -> rule or LevelCovariate, optional
            Regressors carried to every node: ``{"price": "wmean", "promo": "sum",
            "temperature": LevelCovariate(temp_df, on="state")}``; rules ``sum``, ``mean``,
            ``min``, ``max``, ``first``, ``wmean`` (see :mod:`htsforecast._exog`).
        as_panel : bool
            Return the :class:`~htsforecast._panel.ValidPanel` (arrays in node order, the
            ``freq`` grid, each node's span) instead of the frame. ``forecast``, ``reconcile``
            and ``cross_validate`` take it without validating it again; needs ``freq`` and a
            target, and no ``exog``.

        Returns
        -------
        DataFrame
            Long ``unique_id, ds, y`` (without ``y`` when ``target_col=None``) plus one column
            per regressor, for every node, nodes in :attr:`node_ids` order, dates ascending.

        Raises
        ------
        DataError
            Missing columns, NaN keys, NaN or non-numeric target, duplicate (keys, date) rows,
            dates off ``freq``, gaps (with ``fill=None``).
        HierarchyError
            A key column named like an output column (``level``, ``model`` ...), or data whose
            bottom series differ from those this hierarchy was built on.

        Notes
        -----
        Nesting follows fable's grammar: in ``state / county`` a county is identified by its
        state too, so the same county label under two states gives two nodes
        (``state=IN/county=ADAMS`` and ``state=PA/county=ADAMS``). Key values keep their exact
        spelling (``"01"`` and ``"1"`` are different nodes); two values that print the same
        (``1`` and ``"1"`` in one column) are an error, never merged.

        Ragged histories (without ``fill``): each bottom series lives from its first to its last
        observation. Before its first one it is absent (it adds 0 to its aggregates and its model
        is fitted on its own span); after its last one it is closed (0 from then on, with a
        :class:`~htsforecast.errors.DataWarning`); a missing date inside the span is a gap.
        """
        if self._formula is None:
            raise HierarchyError("aggregate needs a formula; this Hierarchy came from S_df/tags.")
        if fill not in (None, "zero"):
            raise DataError(f"fill must be None or 'zero', got {fill!r}.")
        keys = list(self._formula.columns)
        _check_reserved(keys)
        v.require_columns(df, [*keys, time_col, *([target_col] if target_col else [])])
        if len(df) == 0:
            raise DataError("data has no rows.")
        if target_col is None and not exog:
            raise DataError("target_col=None aggregates regressors only: pass exog={...}.")
        values = v.check_target(df, target_col) if target_col else np.ones(len(df))
        dates = v.to_datetime(df, time_col)
        row_codes, bottom_keys = _factorize_keys(df, keys)
        bottom_ids = _node_ids(bottom_keys, keys)
        structure = self._structure_for(bottom_keys, bottom_ids)
        pos = pd.Index(structure.node_ids[-structure.S.shape[1] :]).get_indexer(bottom_ids)
        codes = pos[row_codes]
        grid = (
            v.date_grid(dates, freq, time_col)
            if freq
            else pd.DatetimeIndex(pd.unique(dates)).sort_values()
        )
        t_codes = grid.get_indexer(pd.DatetimeIndex(dates))
        bottom = structure.node_ids[-structure.S.shape[1] :]
        v.check_duplicates(
            codes * len(grid) + t_codes, df.index, [*keys, time_col],
            lambda i: f"{bottom[codes[i]]} @ {v.format_date(grid[t_codes[i]])}",
        )  # fmt: skip
        Yb = np.full((structure.S.shape[1], len(grid)), np.nan)
        Yb[codes, t_codes] = values
        first = _spans(Yb, self.bottom_ids, grid, fill, freq)
        Yb = np.nan_to_num(Yb, nan=0.0)
        all_values = structure.S @ Yb
        _check_overflow(all_values, structure.node_ids, target_col or "y")
        start = np.minimum.reduceat(first[structure.S.indices], structure.S.indptr[:-1])
        keep = np.arange(len(grid))[None, :] >= start[:, None]
        if as_panel:
            if not freq or target_col is None or exog:
                raise DataError("as_panel=True needs freq, a target_col and no exog.")
            values = np.where(keep, all_values, np.nan)
            ids = np.asarray(structure.node_ids, dtype=object)
            end = np.full(len(ids), len(grid), dtype=np.int64)
            return ValidPanel(ids, grid, values, start.astype(np.int64), end, str(freq))
        out = _long_frame(structure, all_values, grid, keep)
        if target_col is None:
            out = out.drop(columns="y")
        if exog:
            g = ExogGrid(structure.S, structure.node_ids, structure.bottom_keys, codes, t_codes,
                         grid, time_col)  # fmt: skip
            cols, weights = aggregate_exog(
                exog, df, g, Yb if target_col else None, self._exog_weights
            )
            self._exog_weights = self._exog_weights if weights is None else weights
            out = out.assign(**{name: x[keep] for name, x in cols.items()})
        return out

    def _structure_for(self, bottom_keys: pd.DataFrame, bottom_ids: list[str]) -> _Structure:
        st = self._structure
        if st is None:
            self._structure = _build_structure(self._formula, bottom_keys, bottom_ids)  # type: ignore[arg-type]
            return self._structure
        known = set(st.node_ids[-st.S.shape[1] :])
        unknown = [i for i in bottom_ids if i not in known]
        if unknown:
            raise HierarchyError(
                f"data has bottom series this Hierarchy was not built on: "
                f"{v.format_examples(unknown)}. Create a new Hierarchy for new data."
            )
        return st

    # ------------------------------------------------------------------ interop
    def to_nixtla(self) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """Return ``(S_df, tags)`` as hierarchicalforecast expects.

        ``S_df`` is dense (hierarchicalforecast's format); use :attr:`S` for large hierarchies.
        """
        st = self._fitted()
        S_df = pd.DataFrame(st.S.toarray(), columns=self.bottom_ids)
        S_df.insert(0, "unique_id", list(st.node_ids))
        tags = {k: np.array(val, dtype=object) for k, val in st.levels.items()}
        return S_df, tags


# ---------------------------------------------------------------------- helpers
def _level_name(level: tuple[str, ...]) -> str:
    return "/".join(level) if level else TOTAL


def _level_lookup(levels: Mapping[str, Sequence[str]]) -> dict[str, str]:
    return {node: name for name, nodes in levels.items() for node in nodes}


def _check_levels_cover(levels: Mapping[str, Sequence[str]], ids: Sequence[str]) -> None:
    lookup = _level_lookup(levels)
    missing = [i for i in ids if i not in lookup]
    if missing:
        raise HierarchyError(f"node(s) {v.format_examples(missing)} are in S_df but in no tag.")
    extra = [i for i in lookup if i not in set(ids)]
    if extra:
        raise HierarchyError(f"tag node(s) {v.format_examples(extra)} are not rows of S_df.")


def _factorize_keys(df: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Code of each row's bottom key combination and the sorted table of distinct combinations.

    Raises a :class:`DataError` naming the column and rows when a key is missing (NaN/None).
    """
    col_codes, col_values = [], []
    for col in keys:
        codes, uniques = pd.factorize(df[col], use_na_sentinel=True)
        if (codes < 0).any():
            bad = df.index[codes < 0]
            raise DataError(
                f"key column '{col}' has {len(bad)} missing value(s), at row(s) "
                f"{v.format_examples(bad)}. Drop those rows or give them a value."
            )
        values = np.asarray(uniques).astype(str)
        if len(pd.unique(values)) != len(values):  # e.g. 1 and "1": same label, two values
            labels = pd.Series(values)
            same = labels[labels.duplicated(keep=False)]
            shown = [repr(u) for u, lab in zip(uniques, values) if lab in set(same)]
            raise DataError(
                f"key column '{col}' has different values that print the same: "
                f"{v.format_examples(shown)}; htsforecast never merges keys. Make the column one "
                f"type first, e.g. df['{col}'] = df['{col}'].astype(str)."
            )
        empty = np.flatnonzero(values == "")
        if len(empty):
            bad = df.index[np.isin(codes, empty)]
            raise DataError(
                f"key column '{col}' has {len(bad)} empty value(s), at row(s) "
                f"{v.format_examples(bad)}. Drop those rows or give them a value."
            )
        bad = [x for x in values if "/" in x or "=" in x]
        if bad:
            raise DataError(
                f"key column '{col}' has value(s) containing '/' or '=' "
                f"({v.format_examples([repr(b) for b in bad])}); node ids are 'key=value' paths "
                "joined by '/', so these would be ambiguous. Replace those characters first."
            )
        col_codes.append(codes)
        col_values.append(values)
    # one int64 per row (mixed radix), then a hash factorization: O(rows)
    key = np.zeros(len(df), dtype=np.int64)
    for codes, vals in zip(col_codes, col_values):
        key = pd.factorize(key * len(vals) + codes)[0].astype(np.int64)  # compress: no overflow
    inverse, first = _factorize_first(key)
    table = pd.DataFrame(
        {c: vals[codes[first]] for c, codes, vals in zip(keys, col_codes, col_values)}
    )
    order = np.lexsort([table[c].to_numpy() for c in reversed(keys)])
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse], table.iloc[order].reset_index(drop=True)


def _factorize_first(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``key`` (first-appearance order) and the row of each code's first appearance."""
    inverse, uniques = pd.factorize(key)
    first = np.full(len(uniques), -1, dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(key))[::-1]
    return inverse, first


def _node_ids(table: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    """``key=value`` path ids for the rows of ``table`` over ``cols`` (``total`` when empty)."""
    if not cols:
        return [TOTAL] * len(table)
    out = pd.Series([""] * len(table), index=table.index, dtype=object)
    for i, c in enumerate(cols):
        part = c + "=" + table[c].astype(str)
        out = part if i == 0 else out + "/" + part
    return out.tolist()


def _build_structure(
    formula: ParsedFormula, bottom_keys: pd.DataFrame, bottom_ids: list[str]
) -> _Structure:
    """Enumerate the nodes of every level and the sparse S (COO -> CSR)."""
    keys = list(formula.columns)
    n_b = len(bottom_keys)
    rows, cols, node_ids, key_rows, levels = [], [], [], [], {}
    offset = 0
    b_index = np.arange(n_b)
    for level in formula.levels:
        name = _level_name(level)
        if level:
            g = bottom_keys.groupby(list(level), sort=True, observed=True)
            codes = g.ngroup().to_numpy()
            table = g.size().reset_index()[list(level)]
        else:
            codes = np.zeros(n_b, dtype=np.int64)
            table = pd.DataFrame(index=[0])
        if len(level) == len(keys):  # bottom: keep the order of bottom_keys (identity block)
            codes, table, ids = b_index, bottom_keys[keys], bottom_ids
        else:
            ids = _node_ids(table, level)
        rows.append(codes + offset)
        cols.append(b_index)
        node_ids.extend(ids)
        levels[name] = ids
        kt = pd.DataFrame(
            {c: table[c].to_numpy() if c in level else AGGREGATED for c in keys},
            index=np.arange(len(ids)),
        )
        kt["level"] = name
        key_rows.append(kt)
        offset += len(ids)
    S = sp.csr_matrix(
        (np.ones(n_b * len(formula.levels)), (np.concatenate(rows), np.concatenate(cols))),
        shape=(offset, n_b),
    )
    keys_df = pd.concat(key_rows, ignore_index=True)
    keys_df.index = pd.Index(node_ids, name="unique_id")
    bk = bottom_keys.copy()
    bk.index = pd.Index(levels[_level_name(formula.levels[-1])], name="unique_id")
    return _Structure(S, tuple(node_ids), levels, keys_df, bk)


def _long_frame(
    st: _Structure, values: np.ndarray, grid: pd.DatetimeIndex, keep: np.ndarray
) -> pd.DataFrame:
    """Long ``unique_id, ds, y`` of the cells ``keep`` (each node from its first date on)."""
    rows, cols = np.nonzero(keep)
    return pd.DataFrame(
        {
            "unique_id": np.asarray(st.node_ids, dtype=object)[rows],
            "ds": grid.to_numpy()[cols],
            "y": values[rows, cols],
        }
    )


def _spans(
    Yb: np.ndarray,
    labels: Sequence[str],
    grid: pd.DatetimeIndex,
    fill: str | None,
    freq: str | None,
) -> np.ndarray:
    """Apply the gap policy to the bottom matrix in place; return each bottom's first period.

    Without ``fill``, a bottom series lives from its first to its last observation (a product
    launched late, a store closed early): missing cells inside that span are gaps (an error),
    before it they are absent (the series contributes 0 to its aggregates and is modelled on its
    own span), and after it the series is closed (0 from then on, with a notice).
    ``fill="zero"`` sets every missing cell of the grid to 0 (the series then spans the grid).
    """
    present = ~np.isnan(Yb)
    T = Yb.shape[1]
    if fill == "zero":
        Yb[~present] = 0.0
        return np.zeros(len(Yb), dtype=np.int64)
    first = np.argmax(present, axis=1)
    last = T - 1 - np.argmax(present[:, ::-1], axis=1)
    t = np.arange(T)[None, :]
    inside = (t >= first[:, None]) & (t <= last[:, None])
    hint = (
        "Pass fill='zero' if a missing row means zero, or complete the data first."
        if freq
        else "Every bottom series must have every date between its first and last one; pass "
        "fill='zero' if a missing row means zero."
    )
    v.check_gaps(present | ~inside, labels, grid, hint)
    closed = np.flatnonzero(last < T - 1)
    if len(closed):
        Yb[t > last[:, None]] = 0.0
        warnings.warn(
            f"{len(closed)} bottom series end before the last date "
            f"{grid[-1].date()} (e.g. {v.format_examples([labels[int(i)] for i in closed], 3)}): "
            "they are treated as closed, 0 after their last observation.",
            DataWarning,
            stacklevel=4,
        )
    return first.astype(np.int64)


def _check_overflow(values: np.ndarray, node_ids: Sequence[str], target_col: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        nodes = [node_ids[i] for i in np.unique(np.nonzero(bad)[0])]
        raise DataError(
            f"summing target column '{target_col}' overflows float64 at node(s) "
            f"{v.format_examples(nodes)}: the values are too large (near 1e308). Rescale the "
            "target first (e.g. divide it by 1e6)."
        )


#: Column names htsforecast's outputs use; a key column may not take one of them.
RESERVED = ("unique_id", "level", "model", "method", "cutoff", "horizon", "metric", "value")


def _check_reserved(keys: Sequence[str]) -> None:
    clash = [k for k in keys if k in RESERVED or k.startswith("yhat")]
    if clash:
        raise HierarchyError(
            f"key column(s) {clash} clash with htsforecast's own output columns "
            f"({', '.join(RESERVED)}, yhat*); rename them first, e.g. "
            f"df.rename(columns={{{clash[0]!r}: {clash[0] + '_'!r}}})."
        )


def level_owner(S: sp.spmatrix, rows: np.ndarray) -> np.ndarray | None:
    """For each bottom series, the position in ``rows`` of the node that holds it.

    ``None`` when the nodes ``rows`` of ``S`` do not partition the bottom series (some bottom is
    in no node or in several). Vectorised (scipy's sparse ``argmax`` loops in Python).
    """
    block = sp.csr_matrix(S)[rows]
    if not np.array_equal(np.asarray(block.sum(axis=0)).ravel(), np.ones(S.shape[1])):
        return None
    coo = block.tocoo()
    owner = np.empty(S.shape[1], dtype=np.intp)
    owner[coo.col] = coo.row
    return owner


def refines(lower: np.ndarray, upper: np.ndarray) -> bool:
    """True when every node of the lower level (owner codes per bottom) lies in one upper node."""
    pairs = np.unique(np.stack([lower, upper]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1]


def _is_strict(
    S: sp.csr_matrix, levels: Mapping[str, Sequence[str]], node_ids: Sequence[str]
) -> bool:
    """Each level partitions the bottoms and refines the previous level."""
    index = {n: i for i, n in enumerate(node_ids)}
    prev: np.ndarray | None = None
    for nodes in levels.values():
        owner = level_owner(S, np.array([index[n] for n in nodes]))
        if owner is None or (prev is not None and not refines(owner, prev)):
            return False
        prev = owner
    return True
