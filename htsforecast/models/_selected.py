"""Per-node model selection by cross-validation on the training data.

:class:`Selected` picks, at every node, the candidate with the lowest rolling-origin error on
the data it is given and returns that candidate's forecasts, fitted values and residuals.
Selecting per node and *then* reconciling gives coherent forecasts; choosing a different
reconciled pipeline per level does not (see :func:`htsforecast.evaluate.select_best`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from htsforecast.errors import DataError
from htsforecast.models._backtest import (
    METRICS,
    backtest_errors,
    cut_windows,
    fit_output,
    score_errors,
    within_one_se,
)
from htsforecast.models._combination import Combination
from htsforecast.models._execution import Executor
from htsforecast.models._protocol import Forecaster, ModelOutput, Panel

__all__ = ["Selected", "ADI_THRESHOLD", "zero_share"]

#: Average inter-demand interval above which a series counts as intermittent (Syntetos, Boylan
#: & Croston 2005): ADI = T / (number of non-zero values) > 1.32, i.e. a zero share above
#: 1 - 1/1.32 ≈ 0.242.
ADI_THRESHOLD = 1.32


def zero_share(panel: Panel) -> np.ndarray:
    """Share of exact zeros in each series of ``panel``, shape (n_series,)."""
    group = np.repeat(np.arange(panel.n_series), panel.lengths)
    zeros = np.bincount(group, weights=(panel.y == 0), minlength=panel.n_series)
    return zeros / np.maximum(panel.lengths, 1)


class _FitCache:
    """Memoise ``fit_output`` so that a combination and its members, a member shared by two
    candidates, and consecutive calls on overlapping data fit each model once per data.

    It lives on the :class:`Selected` instance. In a cross-validation fold ending ``h`` steps
    before the end, the fold's final fit and its later backtest origins are the next call's
    earlier origins; in the job's outer windows, the same training cuts recur (tourism: 16
    cuts, 8 distinct). Keys hash the data exactly, so a reused fit is the fit of the same
    numbers:

    * models fitted one series at a time (:func:`_is_local`: statsforecast models, the
      intermittent ones) are memoised **per series** (model, series dates and values, h,
      level): a series whose group changes between calls (intermittent or regular by its
      share of zeros) or which is fitted in another sub-panel is not refitted; only the
      series not yet seen are fitted, in one batch;
    * other models (global ones such as LightGBM learn from every series given) per panel.

    The oldest entries are dropped beyond ``max_values`` stored numbers.
    """

    max_values = 30_000_000

    def __init__(self) -> None:
        self._store: dict[tuple, Any] = {}
        self._size: dict[tuple, int] = {}
        self._total = 0

    def fit(
        self, model: Forecaster, panel: Panel, h: int, level: tuple, executor: Executor
    ) -> tuple[np.ndarray, ModelOutput]:
        if isinstance(model, Combination):
            out = model.fit_with(panel, h, level, executor, self.fit)
            return ~np.isin(np.arange(panel.n_series), list(out.failures)), out
        if _is_local(model, panel):
            return self._fit_series(model, panel, h, level, executor)
        key = (id(model), _digest(panel.indptr, panel.ds, panel.y), h, tuple(level))
        if key not in self._store:  # the model is kept alive with its result: ids stay unique
            ok, out = fit_output(model, panel, h, level, executor)
            self._put(key, (model, (ok, out)), out.mean.size + out.fitted.size)
        return self._store[key][1]

    def _fit_series(
        self, model: Forecaster, panel: Panel, h: int, level: tuple, executor: Executor
    ) -> tuple[np.ndarray, ModelOutput]:
        """Per-series memo: fit the series not seen yet in one batch, assemble the rest."""
        keys = [
            (id(model), _digest(panel.ds[a:b], panel.y[a:b]), h, tuple(level))
            for a, b in zip(panel.indptr[:-1], panel.indptr[1:], strict=True)
        ]
        todo = np.array([i for i, k in enumerate(keys) if k not in self._store], dtype=np.int64)
        if todo.size:
            sub = panel.subset(todo)
            ok, out = fit_output(model, sub, h, level, executor)
            for j, i in enumerate(todo):
                a, b = sub.indptr[j], sub.indptr[j + 1]
                row = (model, bool(ok[j]), out.mean[j], out.fitted[a:b],
                       {lv: out.lo[lv][j] for lv in level}, {lv: out.hi[lv][j] for lv in level},
                       out.failures.get(j))  # fmt: skip
                self._put(keys[i], row, h * (1 + 2 * len(level)) + (b - a))
        rows = [self._store[k] for k in keys]
        full = ModelOutput.empty(panel.n_series, h, level, len(panel.y))
        for i, row in enumerate(rows):
            full.mean[i] = row[2]
            full.fitted[panel.indptr[i] : panel.indptr[i + 1]] = row[3]
            for lv in level:
                full.lo[lv][i], full.hi[lv][i] = row[4][lv], row[5][lv]
        failures = {i: row[6] for i, row in enumerate(rows) if row[6] is not None}
        return np.array([row[1] for row in rows], dtype=bool), replace(full, failures=failures)

    def _put(self, key: tuple, value: Any, size: int) -> None:
        self._store[key], self._size[key] = value, size
        self._total += size
        while self._total > self.max_values and len(self._store) > 1:
            old = next(iter(self._store))
            del self._store[old]
            self._total -= self._size.pop(old)


def _digest(*arrays: np.ndarray) -> str:
    """Exact content hash of ``arrays`` (dates as int64)."""
    digest = hashlib.blake2b(digest_size=16)
    for arr in arrays:
        arr = arr.view(np.int64) if arr.dtype.kind == "M" else arr
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


def _is_local(model: Forecaster, panel: Panel) -> bool:
    """Models whose forecast of a series depends on that series only (statsforecast fits each
    series on its own; the intermittent models wrap it), without regressors."""
    from htsforecast.models._intermittent import IntermittentModel
    from htsforecast.models._statsforecast import StatsForecastModel

    return panel.X is None and type(model) in (StatsForecastModel, IntermittentModel)


@dataclass(eq=False)
class Selected:
    """At every node, the candidate with the best cross-validated error on the training data.

    Parameters
    ----------
    candidates : dict name -> model
        The models to choose from (a :class:`Combination` can be one; candidates sharing member
        instances are fitted once per window).
    by : {"cv"}
        Selection rule: rolling-origin cross-validation inside the data given.
    metric : {"mase", "rmsse", "mae", "rmse", "mse"}
        Per node, the metric of each window (h steps) averaged over the windows.
    n_windows : int
        Number of origins (the last one's test period is the last ``h`` observations).
    step : int, optional
        Observations between origins (default ``h``).
    season_length : int
        Season of the MASE / RMSSE scale (4 quarterly, 12 monthly).
    intermittent : dict name -> model, optional
        Candidates for intermittent nodes: nodes whose average inter-demand interval exceeds
        ``adi`` (share of zeros above ``1 - 1/adi``) choose among these instead of
        ``candidates`` (e.g. Croston, ADIDA, IMAPA, TSB).
    adi : float
        Intermittency threshold (default 1.32, Syntetos, Boylan & Croston 2005).
    prefer : str, optional
        A candidate (of either group) that a node keeps unless another beats it clearly: with
        two or more windows, the best-scoring candidate replaces ``prefer`` only when its mean
        advantage over the windows exceeds one standard error of the per-window differences
        (the one-standard-error rule; Hastie, Tibshirani & Friedman 2009, §7.10). Per-node
        selection from a few windows is noisy (Fildes & Petropoulos 2015; Kourentzes et al.
        2019), so a robust default such as an equal-weight combination is the natural
        ``prefer``. ``choices_`` then has a ``best`` column with the raw winner.

    Notes
    -----
    Only the data passed to ``fit_predict`` is used (in :func:`htsforecast.cross_validate` that
    is each fold's training data), so the choice never sees the test period. A candidate that
    fails on a node in a window where another candidate works is not eligible there; a node
    where no candidate has a score (too short for any window) takes the first candidate; a
    group with a single candidate is not backtested (its score columns are NaN). The
    chosen candidate is then refitted on the group's full data (every node of its group, so a
    global model learns from all of them) and kept at the nodes that chose it. After each fit, ``choices_``
    holds one row per node: ``unique_id``, ``group`` (``"regular"``/``"intermittent"``),
    ``model`` (the choice) and one ``score[<name>]`` column per candidate.
    """

    candidates: Mapping[str, Forecaster]
    by: Literal["cv"] = "cv"
    metric: str = "mase"
    n_windows: int = 2
    step: int | None = None
    season_length: int = 1
    intermittent: Mapping[str, Forecaster] | None = None
    adi: float = ADI_THRESHOLD
    prefer: str | None = None
    choices_: pd.DataFrame | None = field(default=None, init=False, repr=False)
    _cache: _FitCache = field(default_factory=_FitCache, init=False, repr=False)

    def __post_init__(self) -> None:
        for what, group in (("candidates", self.candidates), ("intermittent", self.intermittent)):
            if group is None and what == "intermittent":
                continue
            if not isinstance(group, Mapping) or not group:
                raise DataError(f"Selected {what} must be a non-empty dict name -> model.")
            bad = [n for n, m in group.items() if not isinstance(m, Forecaster)]
            if bad:
                raise DataError(
                    f"Selected {what} {bad} are not htsforecast models (wrap statsforecast "
                    "models in StatsForecastModel)."
                )
        if self.by != "cv":
            raise DataError(f"Selected by={self.by!r} is not supported; use by='cv'.")
        if self.metric not in METRICS:
            raise DataError(f"unknown Selected metric {self.metric!r}; choose from {METRICS}.")
        known = {*self.candidates, *(self.intermittent or {})}
        if self.prefer is not None and self.prefer not in known:
            raise DataError(
                f"Selected prefer={self.prefer!r} is not a candidate; choose from {sorted(known)}."
            )
        if not self.adi >= 1:
            raise DataError(
                f"Selected adi must be >= 1 (1 = every node with a zero), got {self.adi}."
            )

    def __repr__(self) -> str:
        extra = f", intermittent={list(self.intermittent)}" if self.intermittent else ""
        return f"Selected({list(self.candidates)}{extra}, metric={self.metric!r})"

    @property
    def min_obs(self) -> int:
        """A node is given to the selection when at least one candidate can fit it."""
        models = [*self.candidates.values(), *(self.intermittent or {}).values()]
        return min(int(getattr(m, "min_obs", 1) or 1) for m in models)

    @property
    def uses_exog(self) -> bool:
        """True when a candidate uses exogenous regressors (it receives them)."""
        models = [*self.candidates.values(), *(self.intermittent or {}).values()]
        return any(getattr(m, "uses_exog", False) for m in models)

    def fit_predict(
        self, panel: Panel, h: int, level: tuple[int, ...], executor: Executor
    ) -> ModelOutput:
        """Choose a candidate per node by backtesting on ``panel``, then refit the choices."""
        cache = self._cache
        full = ModelOutput.empty(panel.n_series, h, level, len(panel.y))
        failures: dict[int, str] = {}
        tables = []
        for group, idx, cands in self._groups(panel):
            sub = panel.subset(idx)
            names, table = self._choose(sub, cands, h, level, executor, cache)
            tables.append(table.assign(group=group))
            for k, name in enumerate(cands):
                pick = np.flatnonzero(names == k)
                if pick.size == 0:
                    continue
                # refit on the whole group (a global model learns from all of it; the fit is
                # then the next call's backtest origin, see _FitCache), keep the chosen rows
                ok, out = cache.fit(cands[name], sub, h, level, executor)
                full = full.place(_rows(out, pick, sub), idx[pick], panel)
                bad = pick[~ok[pick]]
                failures.update({int(idx[j]): f"{name} failed" for j in bad})
        self.choices_ = _order(tables, panel)
        return replace(full, samples=None, failures=failures)

    def _groups(self, panel: Panel) -> list[tuple[str, np.ndarray, Mapping[str, Forecaster]]]:
        every = np.arange(panel.n_series)
        if not self.intermittent:
            return [("regular", every, self.candidates)]
        inter = zero_share(panel) > 1.0 - 1.0 / self.adi
        groups = [("regular", every[~inter], self.candidates)]
        groups.append(("intermittent", every[inter], self.intermittent))
        return [g for g in groups if g[1].size]

    def _choose(
        self,
        sub: Panel,
        cands: Mapping[str, Forecaster],
        h: int,
        level: tuple[int, ...],
        executor: Executor,
        cache: _FitCache,
    ) -> tuple[np.ndarray, pd.DataFrame]:
        """Index of the chosen candidate per series of ``sub`` and the score table."""
        if len(cands) == 1:  # nothing to choose: no backtest, no scores
            first = np.zeros(sub.n_series, dtype=np.int64)
            return first, self._table(sub, list(cands), np.full((sub.n_series, 1), np.nan),
                                      first, first)  # fmt: skip
        windows = cut_windows(sub, h, self.n_windows, self.step)
        errors = backtest_errors(sub, cands, windows, h, executor, cache.fit, level)
        per_window = np.stack(
            [score_errors(e, self.metric, sub, windows, self.season_length, per_window=True)
             for e in errors.values()], axis=-1,
        )  # fmt: skip  # (n_series, n_windows, n_candidates)
        finite = np.isfinite(per_window)  # the mean over windows of the finite scores, NaN if none
        n_ok, total = finite.sum(axis=1), np.where(finite, per_window, 0.0).sum(axis=1)
        scores = np.divide(total, n_ok, out=np.full(total.shape, np.nan), where=n_ok > 0)
        counts = np.column_stack([np.isfinite(e).all(axis=2).sum(axis=1) for e in errors.values()])
        eligible = np.isfinite(scores) & (counts == counts.max(axis=1, keepdims=True))
        masked = np.where(eligible, scores, np.inf)
        best = np.where(eligible.any(axis=1), np.argmin(masked, axis=1), 0)
        choice = self._keep_preferred(best, per_window, eligible, list(cands))
        return choice, self._table(sub, list(cands), scores, best, choice)

    def _table(
        self, sub: Panel, cands: list[str], scores: np.ndarray, best: np.ndarray, choice: np.ndarray
    ) -> pd.DataFrame:
        """``unique_id, model, [best,] score[<candidate>]...`` of one group's nodes."""
        names = np.asarray(cands, dtype=object)
        table = pd.DataFrame(scores, columns=[f"score[{n}]" for n in cands])
        if self.prefer is not None:
            table.insert(0, "best", names[best])
        table.insert(0, "model", names[choice])
        table.insert(0, "unique_id", sub.ids.astype(str))
        return table

    def _keep_preferred(
        self, best: np.ndarray, per_window: np.ndarray, eligible: np.ndarray, names: list[str]
    ) -> np.ndarray:
        """``best``, except that nodes keep ``prefer`` where it is eligible and within one
        standard error of the best (see the class docstring)."""
        if self.prefer is None or self.prefer not in names:
            return best
        k = names.index(self.prefer)
        rows = np.arange(per_window.shape[0])
        keep = eligible[:, k] & within_one_se(per_window[:, :, k] - per_window[rows, :, best])
        return np.where(keep, k, best)


def _rows(out: ModelOutput, pick: np.ndarray, panel: Panel) -> ModelOutput:
    """The output of series ``pick`` of ``panel`` only."""
    return ModelOutput(
        out.mean[pick],
        out.fitted[panel.rows(pick)],
        {lv: v[pick] for lv, v in out.lo.items()},
        {lv: v[pick] for lv, v in out.hi.items()},
    )


def _order(tables: list[pd.DataFrame], panel: Panel) -> pd.DataFrame:
    out = pd.concat(tables, ignore_index=True)
    lead = ["unique_id", "group", "model", *(["best"] if "best" in out.columns else [])]
    cols = [*lead, *(c for c in out.columns if c.startswith("score["))]
    pos = pd.Index(out["unique_id"]).get_indexer(panel.ids.astype(str))
    return out.iloc[pos][cols].reset_index(drop=True)
