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
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from htsforecast.errors import ReconciliationError
from htsforecast.hierarchy import level_owner, refines
from htsforecast.reconciliation import _covariance as cov
from htsforecast.reconciliation._kernel import (
    ConstraintSolver,
    LowRankW,
    mint_bottom,
    mint_bottom_nonnegative,
)
from htsforecast.reconciliation._variance import corr_scaled, mint_variance

__all__ = ["Problem", "Fitted", "Kind", "BottomUp", "TopDown", "MiddleOut", "MinTrace", "ERM"]

TopDownMethod = Literal["average_proportions", "proportion_averages", "forecast_proportions"]
#: What the matrix given to :meth:`Fitted.bottom` holds: the base point forecasts (a method may
#: take proportions from them) or sample paths (column ``j`` is a draw at horizon ``steps[j]``).
Kind = Literal["point", "samples"]


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
                "path=[level names from the total to the bottom], choosing from its levels "
                f"(tags) {list(self.levels)}."
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
    """A fitted projection: ``bottom(Y, kind)`` is ``P Y``; ``variance(sigma2)`` is
    ``diag(S P W_h P' S')``.

    ``bottom_fn(Y, kind, steps)`` takes the (n, k) matrix of base values, its :data:`Kind` and,
    for samples, the horizon index of every column (for methods whose ``P`` depends on the point
    forecasts of each horizon, such as forecast proportions). A linear method can be built with
    :meth:`from_projection` and gets exact points, samples and variances for free.
    """

    bottom_fn: Callable[[np.ndarray, Kind, np.ndarray | None], np.ndarray]
    variance_fn: Callable[[np.ndarray], np.ndarray]
    W: LowRankW | None = None
    info: dict = field(default_factory=dict)

    def bottom(
        self, Y: np.ndarray, kind: Kind = "point", steps: np.ndarray | None = None
    ) -> np.ndarray:
        """``P Y`` (m, k) of base point forecasts (``kind="point"``) or of sample paths."""
        if kind not in ("point", "samples"):
            raise ReconciliationError(f"unknown kind {kind!r}: use 'point' or 'samples'.")
        if kind == "samples" and (steps is None or len(steps) != Y.shape[1]):
            raise ReconciliationError("samples need steps: the horizon index of every column.")
        return self.bottom_fn(Y, kind, steps)

    def variance(self, sigma2: np.ndarray) -> np.ndarray:
        """Reconciled variances (n, h) from base variances ``sigma2`` (n, h)."""
        return self.variance_fn(sigma2)

    @classmethod
    def from_projection(
        cls,
        P: sp.spmatrix | np.ndarray,
        W: LowRankW | None = None,
        *,
        S: sp.spmatrix,
        nonnegative: bool = False,
        info: dict | None = None,
    ) -> Fitted:
        """A fitted linear method from its projection ``P`` (m x n), variances included.

        Points and samples are ``P Y`` (clipped at 0 with ``nonnegative``; still coherent, as
        the clipped bottoms are summed). Gaussian variances are ``diag(S P W_h P' S')`` with
        ``W_h = D_σ R D_σ``, ``R`` the correlation of ``W`` (independent errors if ``W`` is
        None): ``(SP ∘ SP) e_h`` plus the low-rank part, exact and linear in the non-zeros of
        ``S P`` (a dense ``P`` costs O(n²); MinTrace has its own structured kernel).

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> S = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
        >>> P = sp.csr_matrix(np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))  # bottom-up
        >>> fit = Fitted.from_projection(P, S=S)
        >>> fit.bottom(np.array([[5.0], [2.0], [-1.0]]))[:, 0].tolist()
        [2.0, -1.0]
        >>> fit.variance(np.ones((3, 1)))[:, 0].tolist()
        [2.0, 1.0, 1.0]
        """

        def bottom(Y: np.ndarray, kind: Kind, steps: np.ndarray | None) -> np.ndarray:
            b = np.asarray(P @ Y)
            return np.maximum(b, 0.0) if nonnegative else b

        def variance(sigma2: np.ndarray) -> np.ndarray:
            SP: Any = sp.csr_matrix(S @ P) if sp.issparse(P) else np.asarray(S @ P)
            SP2 = SP.multiply(SP).tocsr() if sp.issparse(SP) else SP**2
            if W is None:
                return np.asarray(SP2 @ sigma2)
            out = np.empty(sigma2.shape)
            for col in range(sigma2.shape[1]):
                Wh = corr_scaled(W, np.sqrt(sigma2[:, col]))
                out[:, col] = np.asarray(SP2 @ Wh.d).ravel()
                if Wh.U is not None:
                    SPU = np.asarray(SP @ Wh.U)
                    out[:, col] += np.einsum("ij,ij->i", SPU, SPU)
            return out

        return cls(bottom, variance, W=W, info=dict(info or {}))


# ------------------------------------------------------------------------------- bottom-up
@dataclass(frozen=True)
class BottomUp:
    """Bottom-up: the bottom-level base forecasts, summed up (``P = [0 | I]``).

    Parameters
    ----------
    nonnegative : bool
        Clip the bottom forecasts (and sample paths) at 0 before summing: every node is then
        ≥ 0 and coherent. Interval bounds are clipped at 0.
    """

    nonnegative: bool = False

    def fit(self, problem: Problem, yhat: np.ndarray) -> Fitted:
        m, n = problem.m, problem.n
        P = sp.csr_matrix((np.ones(m), (np.arange(m), problem.bottom_rows())), shape=(m, n))
        return Fitted.from_projection(P, S=problem.S, nonnegative=self.nonnegative)


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
    nonnegative : bool
        Top-down of a non-negative top: proportions are taken from the base forecasts clipped
        at 0, and bottoms that would still be negative (a negative top forecast, or negative
        historical shares) are set to 0; every node is then ≥ 0 and coherent. Sample paths are
        clipped the same way, interval bounds at 0.
    """

    method: TopDownMethod = "forecast_proportions"
    path: list[str] | None = None
    nonnegative: bool = False

    def fit(self, problem: Problem, yhat: np.ndarray) -> Fitted:
        top = list(problem.levels)[0]
        return MiddleOut(top, self.method, self.path, self.nonnegative).fit(problem, yhat)


@dataclass(frozen=True)
class MiddleOut:
    """Middle-out: base forecasts at ``split_at`` are kept, bottom-up above, top-down below.

    Parameters
    ----------
    split_at : str
        The middle level (a hierarchy level name such as ``"state"``). Called ``split_at``
        rather than ``level`` because ``level`` means an interval level everywhere else.
    method : {"average_proportions", "proportion_averages", "forecast_proportions"}
        How the middle forecasts are split below it, as in :class:`TopDown`.
    path : list of str, optional
        Nesting path used by forecast proportions (see :class:`TopDown`).
    nonnegative : bool
        As in :class:`TopDown`, from a non-negative middle level (bottom-up above it).
    """

    split_at: str
    method: TopDownMethod = "forecast_proportions"
    path: list[str] | None = None
    nonnegative: bool = False

    def fit(self, problem: Problem, yhat: np.ndarray) -> Fitted:
        if self.split_at not in problem.levels:
            raise ReconciliationError(
                f"unknown level {self.split_at!r}; levels are {list(problem.levels)}."
            )
        if self.method not in (
            "average_proportions",
            "proportion_averages",
            "forecast_proportions",
        ):
            raise ReconciliationError(
                f"unknown top-down method {self.method!r}: use 'average_proportions', "
                "'proportion_averages' or 'forecast_proportions'."
            )
        anchor = problem.membership(self.split_at)  # middle node row of each bottom
        if self.method == "forecast_proportions":
            chain = problem.path(self.path, self.split_at)
            members = [problem.membership(lv) for lv in chain]
            shares_fn = _forecast_proportions(members, problem.m)
        else:
            shares = _historical_shares(problem, anchor, self.method)
            shares_fn = lambda Y: np.broadcast_to(shares[:, None], (problem.m, Y.shape[1]))  # noqa: E731
        clip = (lambda Y: np.maximum(Y, 0.0)) if self.nonnegative else (lambda Y: Y)
        point = shares_fn(clip(yhat))  # (m, h): the shares of the point forecasts

        def bottom(Y: np.ndarray, kind: Kind, steps: np.ndarray | None) -> np.ndarray:
            if kind == "point":  # base values: proportions from these values
                sh = point if Y is yhat else shares_fn(clip(Y))
            else:  # samples: the point forecasts' proportions at each column's horizon
                sh = point[:, steps]
            b = sh * Y[anchor]
            return np.maximum(b, 0.0) if self.nonnegative else b

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


def _forecast_proportions(members: list[np.ndarray], m: int):
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
    method : str
        The covariance estimator, a name in the registry
        :data:`~htsforecast.reconciliation._covariance.COVARIANCES`: ``"ols"``, ``"wls_struct"``,
        ``"wls_var"``, ``"mint_cov"``, ``"mint_shrink"`` (and any registered later).
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

    method: str = "mint_shrink"
    nonnegative: bool = False
    mint_shr_ridge: float = cov.RIDGE

    def weights(self, problem: Problem) -> tuple[LowRankW, dict]:
        """The covariance ``W`` of this method for ``problem`` (and extra info)."""
        est = cov.COVARIANCES.get(self.method)
        if est is None:
            raise ReconciliationError(
                f"unknown MinTrace method {self.method!r}: use {', '.join(cov.COVARIANCES)}."
            )
        if est.needs_residuals and problem.residuals is None:
            raise ReconciliationError(
                f"MinTrace('{self.method}') needs in-sample residuals (fitted values) of every "
                "node."
            )
        return est.fn(problem, self)

    def _solver(self, problem: Problem) -> tuple[LowRankW, dict, ConstraintSolver]:
        W, info = self.weights(problem)
        try:
            return W, info, ConstraintSolver(problem.S, W)
        except ReconciliationError as exc:
            fallback = cov.COVARIANCES[self.method].fallback
            if fallback is None:
                raise
            warnings.warn(
                f"MinTrace('{self.method}'): {exc} Falling back to {fallback}.", stacklevel=3
            )
            W, info = replace(self, method=fallback).weights(problem)
            info["fallback"] = fallback
            return W, info, ConstraintSolver(problem.S, W)

    def fit(self, problem: Problem, yhat: np.ndarray) -> Fitted:
        W, info, solver = self._solver(problem)

        def bottom(Y: np.ndarray, kind: Kind, steps: np.ndarray | None) -> np.ndarray:
            b = mint_bottom(solver, Y)
            if not self.nonnegative:
                return b
            if kind == "point":  # point forecasts: re-project with negative bottoms fixed at 0
                return mint_bottom_nonnegative(problem.S, W, Y, b)
            return np.maximum(b, 0.0)  # sample paths: clip (documented)

        def variance(sigma2: np.ndarray) -> np.ndarray:
            return mint_variance(problem.S, W, sigma2, solver.factor, solver.woodbury())

        return Fitted(bottom, variance, W=W, info=info)


# ------------------------------------------------------------------------------- ERM
@dataclass(frozen=True)
class ERM:
    """Empirical risk minimisation, closed form (Ben Taieb & Koo 2019), as hierarchicalforecast.

    ``P = argmin ||Y - S P Ŷ||²`` over the last ``h`` in-sample periods (``h`` = forecast
    horizon; periods where any node's fitted value is missing are dropped first):
    ``P = ((Ŷ')⁺ B')'`` with ``B = (S'S)⁻¹ S' Y``, ``Y`` the actuals and ``Ŷ`` the in-sample
    fitted values (n x h). ``P`` is not unbiased (``S P S ≠ S`` in general) and is dense
    (n_bottom x n). Gaussian variances use independent base errors (``W = diag(σ²)``, as
    hierarchicalforecast's ``W = I`` with its normality sampler).

    Parameters
    ----------
    nonnegative : bool
        Clip negative bottom values at zero (then sum up).
    """

    nonnegative: bool = False

    def fit(self, problem: Problem, yhat: np.ndarray) -> Fitted:
        if problem.residuals is None or problem.y_insample is None:
            raise ReconciliationError(
                "ERM needs in-sample actuals and fitted values (residuals) of every node."
            )
        fitted = problem.y_insample - problem.residuals
        keep = np.all(np.isfinite(fitted), axis=0)
        h = min(yhat.shape[1], int(keep.sum()))
        if h < 1:
            raise ReconciliationError(
                "ERM needs at least one period with fitted values at every node."
            )
        Yf = fitted[:, keep][:, -h:]
        Ya = problem.y_insample[:, keep][:, -h:]
        S = problem.S
        Bt = splu(sp.csc_matrix(S.T @ S)).solve(np.asarray(S.T @ Ya))  # (m, h)
        P = (np.linalg.pinv(Yf.T) @ Bt.T).T  # (m, n)
        return Fitted.from_projection(P, S=S, nonnegative=self.nonnegative, info={"erm_periods": h})
