"""Reconciliation methods as small value objects.

Each method's :meth:`fit` turns a :class:`Problem` (structure + in-sample information) into a
:class:`Fitted` projection whose ``bottom(Y)`` returns ``P Y`` (bottom-level values) for any
``(n, k)`` matrix of base values: point forecasts, sample paths alike. The API multiplies by ``S``.

References
----------
Hyndman & Athanasopoulos (2021), FPP3 §11.2–11.3; Gross & Sohl (1990) for the historical
proportions; Athanasopoulos, Ahmed & Hyndman (2009) for forecast proportions; Wickramasuriya,
Athanasopoulos & Hyndman (2019) for MinTrace.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp

from htsforecast.errors import ReconciliationError
from htsforecast.hierarchy import level_owner, refines
from htsforecast.reconciliation import _covariance as cov
from htsforecast.reconciliation._kernel import (
    ConstraintSolver,
    LowRankW,
    mint_bottom,
    mint_bottom_nonnegative,
    mint_variance_diag,
)

__all__ = ["Problem", "Fitted", "BottomUp", "TopDown", "MiddleOut", "MinTrace"]

TopDownMethod = Literal["average_proportions", "proportion_averages", "forecast_proportions"]
MinTraceMethod = Literal["ols", "wls_struct", "wls_var", "mint_cov", "mint_shrink"]


@dataclass
class Problem:
    """Everything a method may need, as arrays in node order (bottom rows last).

    Attributes
    ----------
    S : scipy.sparse CSR (n, m)
    levels : dict level name -> ndarray of row indices, top to bottom
    default_path : list of level names from the total to the bottom, each refining the previous
    y_insample : ndarray (n, T) or None, in-sample actuals (historical proportions)
    residuals : ndarray (n, T) or None, in-sample residuals (wls_var, mint_*)
    """

    S: sp.csr_matrix
    levels: dict[str, np.ndarray]
    default_path: list[str] | None = None
    y_insample: np.ndarray | None = None
    residuals: np.ndarray | None = None
    _owners: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # membership cache

    @property
    def n(self) -> int:
        return self.S.shape[0]

    @property
    def m(self) -> int:
        return self.S.shape[1]

    def bottom_rows(self) -> np.ndarray:
        return np.arange(self.n - self.m, self.n)

    def membership(self, level: str) -> np.ndarray:
        """For each bottom series, the row of its node in ``level`` (levels partition bottoms)."""
        if level not in self._owners:
            rows = self.levels[level]
            owner = level_owner(self.S, rows)
            if owner is None:
                raise ReconciliationError(f"level {level!r} does not partition the bottom series.")
            self._owners[level] = rows[owner]
        return self._owners[level]

    def path(self, path: list[str] | None, start: str) -> list[str]:
        """The levels from ``start`` down to the bottom along ``path`` (validated)."""
        full = path if path is not None else self.default_path
        if full is None:
            raise ReconciliationError(
                "this hierarchy has no single nesting path from the total to the bottom; pass "
                "path=[level names from the total to the bottom]."
            )
        unknown = [lv for lv in full if lv not in self.levels]
        if unknown:
            raise ReconciliationError(
                f"unknown level(s) in path: {unknown}; have {list(self.levels)}"
            )
        if start not in full:
            raise ReconciliationError(
                f"level {start!r} is not on the nesting path {full}; pass path=[...] from the "
                f"total through {start!r} to the bottom level."
            )
        sub = full[full.index(start) :]
        bottom_level = list(self.levels)[-1]
        if sub[-1] != bottom_level:
            raise ReconciliationError(f"the path must end at the bottom level {bottom_level!r}.")
        for upper, lower in zip(sub, sub[1:]):
            if not refines(self.membership(lower), self.membership(upper)):
                raise ReconciliationError(
                    f"level {lower!r} is not nested in {upper!r}: a path must refine at each step."
                )
        return sub


@dataclass
class Fitted:
    """A fitted projection: ``bottom(Y)`` is ``P Y``; ``variance(sigma2)`` is diag(S P W_h P' S').

    ``bottom_fn`` takes the (n, k) base matrix and a per-column horizon index (for methods whose
    ``P`` depends on the point forecasts of each horizon, such as forecast proportions).
    """

    bottom_fn: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    variance_fn: Callable[[np.ndarray], np.ndarray]
    W: LowRankW | None = None
    info: dict = field(default_factory=dict)

    def bottom(self, Y: np.ndarray, steps: np.ndarray | None = None) -> np.ndarray:
        return self.bottom_fn(Y, steps)

    def variance(self, sigma2: np.ndarray) -> np.ndarray:
        """Reconciled variances (n, h) from base variances ``sigma2`` (n, h)."""
        return self.variance_fn(sigma2)


def _corr_scaled(W: LowRankW, sigma: np.ndarray) -> LowRankW:
    """``W_h = D_σ R D_σ`` with ``R`` the correlation matrix of ``W`` (hierarchicalforecast's
    'normality' convention): diagonal + low-rank again."""
    dw = W.diag()
    s = sigma / np.sqrt(dw)
    U = None if W.U is None else s[:, None] * W.U
    return LowRankW(s**2 * W.d, U)


# ------------------------------------------------------------------------------- bottom-up
@dataclass(frozen=True)
class BottomUp:
    """Bottom-up: the bottom-level base forecasts, summed up (``P = [0 | I]``)."""

    def fit(self, problem: Problem, yhat: np.ndarray) -> Fitted:
        rows = problem.bottom_rows()

        def variance(sigma2: np.ndarray) -> np.ndarray:
            S2 = problem.S.multiply(problem.S)
            return np.asarray(S2 @ sigma2[rows])

        return Fitted(lambda Y, steps: Y[rows], variance)


# ------------------------------------------------------------------------------- top-down
@dataclass(frozen=True)
class TopDown:
    """Top-down from the total (FPP3 §11.2).

    Parameters
    ----------
    method : {"average_proportions", "proportion_averages", "forecast_proportions"}
        The two historical-proportion methods use each bottom series' share of the total in the
        in-sample data (average of the per-period shares, or share of the averages; periods
        where the total is 0 are skipped); they are defined for any structure, grouped included.
        Forecast proportions disaggregate level by level along a nesting path, by default the
        formula's order (e.g. total → state → state/county → state/county/floor); siblings whose
        forecasts sum to zero share equally.
    path : list of str, optional
        Level names from the total to the bottom, each nested in the previous.
    """

    method: TopDownMethod = "forecast_proportions"
    path: list[str] | None = None

    def fit(self, problem: Problem, yhat: np.ndarray) -> Fitted:
        top = list(problem.levels)[0]
        return MiddleOut(top, self.method, self.path).fit(problem, yhat)


@dataclass(frozen=True)
class MiddleOut:
    """Middle-out: base forecasts at ``level`` are kept, bottom-up above, top-down below.

    Parameters
    ----------
    level : str
        The middle level (a level name such as ``"state"``).
    top_down_method : {"average_proportions", "proportion_averages", "forecast_proportions"}
    path : list of str, optional
        Nesting path used by forecast proportions (see :class:`TopDown`).
    """

    level: str
    top_down_method: TopDownMethod = "forecast_proportions"
    path: list[str] | None = None

    def fit(self, problem: Problem, yhat: np.ndarray) -> Fitted:
        if self.level not in problem.levels:
            raise ReconciliationError(
                f"unknown level {self.level!r}; levels are {list(problem.levels)}."
            )
        if self.top_down_method not in (
            "average_proportions",
            "proportion_averages",
            "forecast_proportions",
        ):
            raise ReconciliationError(
                f"unknown top-down method {self.top_down_method!r}: use 'average_proportions', "
                "'proportion_averages' or 'forecast_proportions'."
            )
        anchor = problem.membership(self.level)  # middle node row of each bottom
        if self.top_down_method == "forecast_proportions":
            chain = problem.path(self.path, self.level)
            members = [problem.membership(lv) for lv in chain]
            shares_fn = _forecast_proportions(members, problem.m)
        else:
            shares = _historical_shares(problem, anchor, self.top_down_method)
            shares_fn = lambda Y: np.broadcast_to(shares[:, None], (problem.m, Y.shape[1]))  # noqa: E731
        point = shares_fn(yhat)  # (m, h): the shares of the point forecasts

        def bottom(Y: np.ndarray, steps: np.ndarray | None) -> np.ndarray:
            if steps is None:  # base values: proportions from these values
                sh = point if Y is yhat else shares_fn(Y)
            else:  # samples: the point forecasts' proportions at each column's horizon
                sh = point[:, steps]
            return sh * Y[anchor]

        def variance(sigma2: np.ndarray) -> np.ndarray:
            sh = point
            # bottom_j = p_j y_anchor(j); node i sums bottoms: var = Σ_k (Σ_{j∈i, anchor k} p_j)² σ²_k
            S = problem.S
            out = np.zeros_like(sigma2)
            uniq, inv = np.unique(anchor, return_inverse=True)
            for col in range(sigma2.shape[1]):
                # weight of middle node k in node i
                Wik = S @ sp.csr_matrix(
                    (sh[:, col], (np.arange(problem.m), inv)), shape=(problem.m, len(uniq))
                )
                out[:, col] = np.asarray(Wik.multiply(Wik) @ sigma2[uniq, col]).ravel()
            return out

        return Fitted(bottom, variance)


def _historical_shares(problem: Problem, anchor: np.ndarray, method: str) -> np.ndarray:
    """Share of each bottom series in its anchor node, from in-sample actuals."""
    if problem.y_insample is None:
        raise ReconciliationError(
            f"top-down '{method}' needs the in-sample actuals (y) of every node."
        )
    yb = problem.y_insample[problem.bottom_rows()]
    ya = problem.y_insample[anchor]
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "average_proportions":
            ratio = np.where(ya != 0, yb / ya, np.nan)
            shares = np.nanmean(ratio, axis=1)
        else:
            shares = np.nanmean(yb, axis=1) / np.nanmean(ya, axis=1)
    bad = ~np.isfinite(shares)
    if bad.any():
        # a parent that is always zero: share equally among its children
        for k in np.unique(anchor[bad]):
            idx = np.flatnonzero(anchor == k)
            shares[idx] = np.where(np.isfinite(shares[idx]), shares[idx], 1.0 / len(idx))
    return shares


def _forecast_proportions(members: list[np.ndarray], m: int):  # noqa: ANN202
    """Vectorised forecast proportions along a chain of levels.

    ``members[k][j]`` is the row of bottom j's node at the k-th level of the chain (the first is
    the anchor level, the last the bottom level). For each step the child's share is its base
    forecast divided by the sum of its siblings' base forecasts (equal shares if that is ~0).
    """

    def shares(Y: np.ndarray) -> np.ndarray:
        out = np.ones((m, Y.shape[1]))
        for upper, lower in zip(members, members[1:]):
            child_rows, first = np.unique(lower, return_index=True)
            parent_of_child = upper[first]
            pidx, pinv = np.unique(parent_of_child, return_inverse=True)
            child_vals = Y[child_rows]
            sums = np.zeros((len(pidx), Y.shape[1]))
            np.add.at(sums, pinv, child_vals)
            n_sib = np.bincount(pinv)[pinv]
            denom = sums[pinv]
            small = np.abs(denom) < 1e-8
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(small, 1.0 / n_sib[:, None], child_vals / denom)
            # map each bottom to its child node's ratio
            pos = np.searchsorted(child_rows, lower)
            out *= ratio[pos]
        return out

    return shares


# ------------------------------------------------------------------------------- MinTrace
@dataclass(frozen=True)
class MinTrace:
    """Minimum-trace reconciliation (Wickramasuriya, Athanasopoulos & Hyndman 2019).

    Parameters
    ----------
    method : {"ols", "wls_struct", "wls_var", "mint_cov", "mint_shrink"}
    nonnegative : bool
        If True, every reported number is ≥ 0 and coherent. Point forecasts: bottoms that come
        out negative are fixed at zero and the MinTrace projection is recomputed for the others,
        until none is negative (iterative set-negative-to-zero inside the projection; no QP
        solver, so it scales like MinTrace). Sample paths: negative reconciled bottoms are set
        to zero and summed up. Interval bounds are clipped at zero.
    mint_shr_ridge : float
        Minimum variance on the diagonal of the shrunk covariance.

    Notes
    -----
    ``mint_cov`` needs ``C W C'`` non-singular, i.e. at least as many complete residual periods
    as aggregate nodes; when it is singular it falls back to ``mint_shrink`` with a warning.
    """

    method: MinTraceMethod = "mint_shrink"
    nonnegative: bool = False
    mint_shr_ridge: float = cov.RIDGE

    def weights(self, problem: Problem) -> tuple[LowRankW, dict]:
        """The covariance ``W`` of this method for ``problem`` (and extra info)."""
        method = self.method
        if method == "ols":
            return cov.w_ols(problem.n), {}
        if method == "wls_struct":
            return cov.w_struct(problem.S), {}
        if method not in ("wls_var", "mint_cov", "mint_shrink"):
            raise ReconciliationError(
                f"unknown MinTrace method {method!r}: use ols, wls_struct, wls_var, mint_cov "
                "or mint_shrink."
            )
        if problem.residuals is None:
            raise ReconciliationError(
                f"MinTrace('{method}') needs in-sample residuals (fitted values) of every node."
            )
        if method == "wls_var":
            return cov.w_var(problem.residuals), {}
        if method == "mint_cov":
            return cov.w_cov(problem.residuals), {}
        W, lam = cov.w_shrink(problem.residuals, self.mint_shr_ridge)
        return W, {"shrinkage_lambda": lam}

    def fit(self, problem: Problem, yhat: np.ndarray) -> Fitted:
        W, info = self.weights(problem)
        try:
            solver = ConstraintSolver(problem.S, W)
        except ReconciliationError as exc:
            if self.method != "mint_cov":
                raise
            warnings.warn(f"MinTrace('mint_cov'): {exc} Falling back to mint_shrink.", stacklevel=2)
            W, info = MinTrace("mint_shrink", self.nonnegative, self.mint_shr_ridge).weights(
                problem
            )
            info["fallback"] = "mint_shrink"
            solver = ConstraintSolver(problem.S, W)

        def bottom(Y: np.ndarray, steps: np.ndarray | None) -> np.ndarray:
            b = mint_bottom(solver, Y)
            if not self.nonnegative:
                return b
            if steps is None:  # point forecasts: re-project with negative bottoms fixed at 0
                return mint_bottom_nonnegative(problem.S, W, Y, b)
            return np.maximum(b, 0.0)  # sample paths: clip (documented)

        def variance(sigma2: np.ndarray) -> np.ndarray:
            Whs = [_corr_scaled(W, np.sqrt(sigma2[:, c])) for c in range(sigma2.shape[1])]
            E = np.stack([w.d for w in Whs], axis=1)
            return mint_variance_diag(solver, E, [w.U for w in Whs])

        return Fitted(bottom, variance, W=W, info=info)
