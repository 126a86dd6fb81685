"""Temporal hierarchy: non-overlapping, end-aligned temporal aggregation and its summing matrix.

For a series of frequency ``freq`` with seasonal period ``m`` (12 for monthly), the temporal
hierarchy of Athanasopoulos et al. (2017) aggregates the series into non-overlapping blocks of
``k`` periods for every ``k`` in a set of factors of the top factor (by default every divisor of
``m``: 12, 6, 4, 3, 2, 1 for monthly data). One *top-level period* (a year for monthly data) then
holds ``m / k`` nodes of level ``k``, ``sum(m / k)`` nodes in all (28 for monthly), and the
temporal summing matrix maps the ``m`` bottom (original-frequency) values of that period to all
of them.

Blocks are aligned to the **end** of each series, as thief does: the first ``len % m``
observations (an incomplete leading top-level period) are dropped before aggregating, so every
level covers the same whole top-level periods.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from htsforecast.errors import DataError, HierarchyError
from htsforecast.models._baseline import season_length_for
from htsforecast.validation import format_examples, validate_panel

__all__ = ["TemporalHierarchy", "to_blocks"]

_MONTHLY_NAMES = {
    12: "annual",
    6: "semi-annual",
    4: "four-monthly",
    3: "quarterly",
    2: "bi-monthly",
    1: "monthly",
}
_QUARTERLY_NAMES = {4: "annual", 2: "semi-annual", 1: "quarterly"}


class TemporalHierarchy:
    """Non-overlapping temporal aggregation levels of a series of frequency ``freq``.

    Parameters
    ----------
    freq : str
        pandas offset alias of the original (bottom) frequency, e.g. ``"MS"``, ``"QS"``.
    factors : sequence of int, optional
        Aggregation orders ``k`` (number of original periods summed). Default: every divisor of
        the seasonal period of ``freq`` (12 for monthly: 12, 6, 4, 3, 2, 1; 4 for quarterly:
        4, 2, 1), as in thief. Every factor must divide the largest one, and 1 is always
        included.

    Attributes
    ----------
    factors : tuple of int
        Descending, ending with 1; ``factors[0]`` is the top-level order ``m``.
    S : scipy.sparse CSR, shape (n_nodes, m)
        Temporal summing matrix of one top-level period: rows are the nodes level by level from
        the top (``k = m``) to the bottom (``k = 1``, the identity), chronological within a level.
    node_level : ndarray (n_nodes,)
        The order ``k`` of each row of ``S``; ``node_offset`` its position within its level.

    Notes
    -----
    Aggregation (:meth:`aggregate`) aligns blocks to the end of each series and drops the
    incomplete leading top-level period (the first ``len % m`` observations), as thief's
    ``tsaggregates`` does; a series shorter than ``m`` is an error.
    """

    def __init__(self, freq: str, factors: Sequence[int] | None = None) -> None:
        try:
            self.offset = pd.tseries.frequencies.to_offset(freq)
        except (ValueError, TypeError):
            raise DataError(f"freq={freq!r} is not a pandas frequency alias (e.g. 'MS').") from None
        self.freq = freq
        self.season_length = season_length_for(freq)
        self.factors = self._check_factors(factors)
        m = self.factors[0]
        self.node_level = np.concatenate([np.full(m // k, k) for k in self.factors])
        self.node_offset = np.concatenate([np.arange(m // k) for k in self.factors])
        rows = np.repeat(np.arange(len(self.node_level)), self.node_level)
        cols = np.concatenate([np.arange(o * k, (o + 1) * k) for k, o in self._nodes()])
        self.S = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(self.node_level), m))

    def _check_factors(self, factors: Sequence[int] | None) -> tuple[int, ...]:
        if factors is None:
            m = self.season_length
            if m <= 1:
                raise HierarchyError(
                    f"freq={self.freq!r} has no seasonal period; pass factors=[...] (e.g. "
                    "[4, 2, 1])."
                )
            return tuple(k for k in range(m, 0, -1) if m % k == 0)
        try:
            ks = sorted({int(k) for k in factors}, reverse=True)
        except (TypeError, ValueError):
            raise HierarchyError(f"factors must be positive integers, got {factors!r}.") from None
        if not ks or ks[-1] < 1 or any(int(k) != k for k in factors):
            raise HierarchyError(f"factors must be positive integers, got {factors!r}.")
        if 1 not in ks:
            ks.append(1)
        bad = [k for k in ks if ks[0] % k]
        if bad:
            raise HierarchyError(
                f"every factor must divide the largest one ({ks[0]}), but {bad} do not; e.g. "
                f"use factors={[k for k in ks if ks[0] % k == 0]}."
            )
        if len(ks) < 2:
            raise HierarchyError("a temporal hierarchy needs at least one factor above 1.")
        return tuple(ks)

    def _nodes(self) -> list[tuple[int, int]]:
        return list(zip(self.node_level.tolist(), self.node_offset.tolist()))

    # ---------------------------------------------------------------- descriptors
    @property
    def m(self) -> int:
        """Top-level aggregation order (original periods per top-level period)."""
        return self.factors[0]

    @property
    def n_nodes(self) -> int:
        return int(self.S.shape[0])

    def level_rows(self, k: int) -> np.ndarray:
        """Row indices of ``S`` belonging to level ``k``."""
        return np.flatnonzero(self.node_level == k)

    def level_freq(self, k: int) -> str:
        """pandas alias of level ``k``, e.g. ``"3MS"`` for k = 3 of ``"MS"``."""
        return (self.offset * k).freqstr

    def season_of(self, k: int) -> int:
        """Season length at level ``k``: ``m / k`` when whole, else 1 (no seasonality)."""
        m = self.season_length
        return m // k if m > 1 and m % k == 0 else 1

    def level_name(self, k: int) -> str:
        """Readable name of level ``k`` (``"quarterly"`` for k = 3 of monthly data)."""
        names = {12: _MONTHLY_NAMES, 4: _QUARTERLY_NAMES}.get(self.season_length, {})
        return names.get(k, f"k={k}")

    def nixtla_spec(self) -> dict[str, int]:
        """The same levels as a hierarchicalforecast ``aggregate_temporal`` spec."""
        return {self.level_name(k): k for k in self.factors}

    def __repr__(self) -> str:
        return f"TemporalHierarchy(freq={self.freq!r}, factors={list(self.factors)})"

    # ---------------------------------------------------------------- aggregation
    def aggregate(self, Y: pd.DataFrame) -> pd.DataFrame:
        """Aggregate every series to every level.

        Parameters
        ----------
        Y : DataFrame
            Long ``unique_id, ds, y`` at ``freq`` (no gaps, e.g. from ``Hierarchy.aggregate``).

        Returns
        -------
        DataFrame
            ``unique_id, temporal_level, ds, y``: ``ds`` is the first date of each block. The
            first ``len % m`` observations of each series are dropped (incomplete leading
            top-level period).
        """
        panel = validate_panel(Y, self.freq)
        lengths = panel.end - panel.start
        short = np.flatnonzero(lengths < self.m)
        if short.size:
            raise DataError(
                f"{short.size} series are shorter than one top-level period ({self.m} periods of "
                f"{self.freq!r}), e.g. {format_examples(list(panel.ids[short]))}; they cannot be "
                "temporally aggregated."
            )
        n_keep = lengths // self.m * self.m  # end-aligned: drop the first len % m periods
        rows = np.repeat(np.arange(panel.n_series), n_keep)
        cols = np.concatenate([np.arange(e - k, e) for e, k in zip(panel.end, n_keep)])
        y, ds = panel.values[rows, cols], panel.dates.to_numpy()[cols]
        ids = np.asarray(panel.ids, dtype=object)[rows]
        parts = []
        for k in self.factors:
            parts.append(
                pd.DataFrame(
                    {
                        "unique_id": ids[::k],
                        "temporal_level": k,
                        "ds": ds[::k],
                        "y": y.reshape(-1, k).sum(axis=1),
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)


def to_blocks(
    frame: pd.DataFrame,
    columns: Sequence[str],
    th: TemporalHierarchy,
    ids: Sequence[str],
    what: str,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Arrays ``(n_ids, n_nodes, P)`` of ``frame[columns]`` per top-level period.

    Each series' rows of level ``k`` (sorted by ``ds``) must be a whole number of top-level
    periods; they are right-aligned so that index ``P - 1`` is every series' last period
    (shorter series are NaN-padded at the front). Also returns, for every row of ``frame``, its
    flat index into the array (to map results back).
    """
    index = pd.Index(ids)
    rows = index.get_indexer(frame["unique_id"].astype(str))
    if (rows < 0).any():
        extra = pd.unique(frame["unique_id"][rows < 0])
        raise DataError(f"{what} has unknown series {format_examples(list(extra))}.")
    level = frame["temporal_level"].to_numpy()
    unknown = np.setdiff1d(np.unique(level), th.factors)
    if unknown.size:
        raise DataError(f"{what} has temporal levels {unknown.tolist()} not in {th.factors}.")
    per = th.m // level  # nodes per top-level period at each row's level
    order = np.lexsort((frame["ds"].to_numpy(), level, rows))
    key = rows[order] * (th.m + 1) + level[order]
    first = np.r_[True, key[1:] != key[:-1]]
    grp = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    idx = np.arange(len(order)) - starts[grp]
    counts = np.diff(np.r_[starts, len(order)])[grp]
    if np.any(counts % per[order]):
        bad = np.unique(rows[order][counts % per[order] != 0])
        raise DataError(
            f"{what}: the rows of series {format_examples([ids[i] for i in bad])} at some "
            "temporal level are not whole top-level periods."
        )
    n_per = counts // per[order]  # periods of this (series, level)
    P = int(n_per.max()) if len(n_per) else 0
    period = P - n_per + idx // per[order]
    node = np.searchsorted(th.factors[::-1], level[order])  # position in ascending factors
    level_start = {k: int(th.level_rows(k)[0]) for k in th.factors}
    node_row = np.array([level_start[k] for k in th.factors[::-1]])[node] + idx % per[order]
    flat = np.empty(len(frame), dtype=np.int64)
    flat[order] = (rows[order] * th.n_nodes + node_row) * P + period
    out = []
    for c in columns:
        arr = np.full(len(ids) * th.n_nodes * max(P, 1), np.nan)
        arr[flat] = frame[c].to_numpy(dtype=float)
        out.append(arr.reshape(len(ids), th.n_nodes, max(P, 1)))
    return out, flat
