"""Estimators of the base-forecast error covariance ``W`` for the MinTrace family.

All of them return a :class:`~htsforecast.reconciliation._kernel.LowRankW` (diagonal + low rank), so an
n x n matrix is never formed. Conventions follow Wickramasuriya, Athanasopoulos & Hyndman (2019)
and match hierarchicalforecast's numbers where the inputs are complete:

- ``wls_var``: ``d_i = mean_t(e_it^2) + 2e-8`` (uncentred in-sample MSE; NaN residuals ignored).
- ``mint_cov``: sample covariance (centred, ``1/(T-1)``) of the residuals.
- ``mint_cov_fable`` / ``mint_shrink_fable``: fable's convention (``covariance="fable"`` in
  the issue's words): uncentred residuals divided by ``T``, as fable and the MinT paper, and
  fabletools' ``shrink.estim`` intensity.
- ``mint_shrink``: Schäfer & Strimmer (2005) shrinkage of the sample covariance towards its
  diagonal, ``W = λ diag(Σ) + (1-λ) Σ``, with the optimal ``λ`` computed in O(n T²) from the
  ``T x T`` Gram matrix of the standardised residuals (exactly the pairwise formula, not an
  approximation); variances below ``ridge`` are raised to ``ridge``.

Residual policy (documented): time points where *any* node's residual is NaN (e.g. the first
season of a seasonal naive, or nodes with a shorter history) are dropped for ``mint_cov`` /
``mint_shrink``, as fable does (``na.omit``); nodes whose residuals are all zero get zero
correlation with the others (their standardised residuals are set to 0).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from htsforecast.errors import ReconciliationError
from htsforecast.reconciliation._kernel import LowRankW

if TYPE_CHECKING:
    from htsforecast.reconciliation._methods import MinTrace, Problem

__all__ = [
    "Estimator",
    "COVARIANCES",
    "w_ols",
    "w_struct",
    "w_var",
    "w_cov",
    "w_shrink",
    "complete_residuals",
    "ResidualGapWarning",
]

RIDGE = 2e-8


class ResidualGapWarning(UserWarning):
    """Residual periods with NaN for some node were dropped from a covariance estimate.

    ``pairs`` lists ``(dropped, total)`` periods per distinct case, ``rows`` the node rows with
    a NaN residual, ``fits`` how many covariance estimates this warning stands for.
    :func:`htsforecast.reconcile` gathers these into one summary naming the nodes.
    """

    def __init__(
        self,
        message: str,
        pairs: list[tuple[int, int]] | None = None,
        rows: np.ndarray | None = None,
        fits: int = 1,
    ) -> None:
        super().__init__(message)
        self.pairs = list(pairs or [])
        self.rows = np.array([], dtype=int) if rows is None else rows
        self.fits = fits


def w_ols(n: int) -> LowRankW:
    """Identity: OLS reconciliation."""
    return LowRankW(np.ones(n))


def w_struct(S) -> LowRankW:
    """Structural scaling: number of bottom series under each node."""
    return LowRankW(np.asarray(S.sum(axis=1), dtype=float).ravel())


def w_var(residuals: np.ndarray) -> LowRankW:
    """In-sample residual variances (uncentred), ignoring NaN residuals.

    Parameters
    ----------
    residuals : ndarray, shape (n, T)
    """
    counts = np.sum(np.isfinite(residuals), axis=1)
    bad = np.flatnonzero(counts == 0)
    if len(bad):
        raise ReconciliationError(
            f"wls_var needs in-sample residuals, but node row(s) {bad[:5].tolist()} have none."
        )
    sq = np.where(np.isfinite(residuals), residuals, 0.0) ** 2
    return LowRankW(sq.sum(axis=1) / counts + RIDGE)


def complete_residuals(residuals: np.ndarray, min_periods: int = 3) -> np.ndarray:
    """Drop the time points where any node's residual is missing (fable's ``na.omit``)."""
    keep = np.all(np.isfinite(residuals), axis=0)
    out = residuals[:, keep]
    if out.shape[1] < min_periods:
        raise ReconciliationError(
            f"only {out.shape[1]} residual period(s) are complete for every node (need at least "
            f"{min_periods}); nodes with shorter histories leave NaN residuals. Use wls_var, "
            "wls_struct or ols, or fit models that give fitted values over a common window."
        )
    if out.shape[1] < residuals.shape[1]:
        dropped, total = residuals.shape[1] - out.shape[1], residuals.shape[1]
        rows = np.flatnonzero(~np.all(np.isfinite(residuals), axis=1))
        message = (
            f"{dropped} of {total} residual periods have NaN for some node and were dropped "
            "from the covariance estimate."
        )
        warnings.warn(ResidualGapWarning(message, [(dropped, total)], rows), stacklevel=3)
    return out


def _moments(R: np.ndarray, convention: str) -> tuple[np.ndarray, int]:
    """(X, divisor): centred and ``T - 1`` ("sample"), or uncentred and ``T`` ("fable")."""
    T = R.shape[1]
    if convention == "fable":
        return R, T
    if convention != "sample":
        raise ReconciliationError(
            f"unknown covariance convention {convention!r}: use 'sample' or 'fable'."
        )
    return R - R.mean(axis=1, keepdims=True), T - 1


def w_cov(residuals: np.ndarray, convention: str = "sample") -> LowRankW:
    """Covariance ``X X' / d`` as a pure low-rank ``W`` (no diagonal part).

    ``convention="sample"``: centred residuals, ``d = T - 1``; ``"fable"``: uncentred
    residuals, ``d = T`` (fable and Wickramasuriya et al. 2019).
    """
    R = complete_residuals(residuals)
    X, d = _moments(R, convention)
    return LowRankW(np.zeros(R.shape[0]), X / np.sqrt(d))


def shrinkage_lambda(Xc: np.ndarray, sd: np.ndarray) -> float:
    """Schäfer–Strimmer optimal shrinkage intensity towards the diagonal.

    ``λ = Σ_{i≠j} Var(r_ij) / Σ_{i≠j} r_ij²`` with ``Var(r_ij) = T/(T-1)^3 Σ_t (w_ijt - w̄_ij)²``,
    ``w_ijt = z_it z_jt`` for standardised residuals ``z``. The sums over pairs are evaluated
    through the ``T x T`` Gram matrix ``G = Z'Z`` (cost O(n T²)).
    """
    T = Xc.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        Z = np.where(sd[:, None] > 0, Xc / sd[:, None], 0.0)
    G = Z.T @ Z  # (T, T)
    z2 = Z**2
    row_sq = z2.sum(axis=1)  # Σ_t z_it²  (n,)
    q = z2.sum(axis=0)  # Σ_i z_it²  (T,)
    sum_w2 = float(q @ q - np.sum(z2**2))  # Σ_{i≠j} Σ_t w_ijt²
    sum_gram2 = float(np.sum(G * G) - row_sq @ row_sq)  # Σ_{i≠j} (Σ_t z_it z_jt)²
    var_w = sum_w2 - sum_gram2 / T  # Σ_{i≠j} Σ_t (w_ijt - w̄_ij)²
    num = T / (T - 1) ** 3 * var_w
    den = sum_gram2 / (T - 1) ** 2  # Σ_{i≠j} r_ij²
    if den <= 0:
        return 1.0
    return float(min(max(num / den, 0.0), 1.0))


def shrinkage_lambda_fable(X: np.ndarray) -> float:
    """fabletools' ``shrink.estim`` intensity for uncentred residuals ``X`` (n, T).

    ``z = x / sqrt(Σ_t x² / T)``, ``v_ij = Σ_t (w_ijt - w̄_ij)² / (T (T-1))`` with
    ``w_ijt = z_it z_jt``, ``r_ij = Σ_t w_ijt / T``, ``λ = Σ_{i≠j} v_ij / Σ_{i≠j} r_ij²``,
    clipped to [0, 1]; the pair sums go through the ``T x T`` Gram matrix as above.
    """
    T = X.shape[1]
    sd = np.sqrt(np.einsum("ij,ij->i", X, X) / T)
    with np.errstate(divide="ignore", invalid="ignore"):
        Z = np.where(sd[:, None] > 0, X / sd[:, None], 0.0)
    G = Z.T @ Z
    z2 = Z**2
    row_sq = z2.sum(axis=1)
    q = z2.sum(axis=0)
    sum_w2 = float(q @ q - np.sum(z2**2))
    sum_gram2 = float(np.sum(G * G) - row_sq @ row_sq)
    num = (sum_w2 - sum_gram2 / T) / (T * (T - 1))
    den = sum_gram2 / T**2
    if den <= 0:
        return 1.0
    return float(min(max(num / den, 0.0), 1.0))


def w_shrink(
    residuals: np.ndarray, ridge: float = RIDGE, convention: str = "sample"
) -> tuple[LowRankW, float]:
    """Shrunk covariance ``λ diag(Σ) + (1-λ) Σ`` as diagonal + low rank; returns ``(W, λ)``.

    ``convention="fable"``: ``Σ`` from uncentred residuals divided by ``T`` and fabletools'
    ``λ`` (:func:`shrinkage_lambda_fable`); ``"sample"``: centred, ``T - 1``, Schäfer–Strimmer.
    """
    R = complete_residuals(residuals)
    X, div = _moments(R, convention)
    var = np.einsum("ij,ij->i", X, X) / div
    if convention == "fable":
        lam = shrinkage_lambda_fable(X)
    else:
        lam = shrinkage_lambda(X, np.sqrt(var))
    d = lam * var + np.maximum(ridge - var, 0.0)
    d = np.where(d > 0, d, ridge)  # λ = 0 with zero variances: keep W positive definite
    U = np.sqrt((1.0 - lam) / div) * X if lam < 1 else None
    return LowRankW(d, U), lam


# ------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Estimator:
    """One covariance estimator of the MinTrace family, as the registry lists it.

    Attributes
    ----------
    fn : callable ``(problem, method) -> (W, info)``
        ``problem`` is the :class:`~htsforecast.reconciliation._methods.Problem` (``S``,
        ``residuals`` ...), ``method`` the :class:`MinTrace` asking (for options such as
        ``mint_shr_ridge``); returns the :class:`LowRankW` and a dict of extra information.
    doc : str
        One line for the CLI help, the docs and the error messages.
    needs_residuals : bool
        Whether it needs in-sample residuals (checked before ``fn`` is called, one message).
    fallback : str or None
        Estimator used, with a warning, when ``C W C'`` is singular for this one.
    """

    fn: Callable[[Problem, MinTrace], tuple[LowRankW, dict]]
    doc: str
    needs_residuals: bool = True
    fallback: str | None = None


def _resid(problem: Problem) -> np.ndarray:
    """The in-sample residuals (``MinTrace.weights`` checks them before calling an estimator)."""
    if problem.residuals is None:
        raise ReconciliationError("this covariance estimator needs in-sample residuals.")
    return problem.residuals


def _shrink(problem: Problem, method: MinTrace) -> tuple[LowRankW, dict]:
    W, lam = w_shrink(_resid(problem), method.mint_shr_ridge)
    return W, {"shrinkage_lambda": lam}


def _shrink_fable(problem: Problem, method: MinTrace) -> tuple[LowRankW, dict]:
    W, lam = w_shrink(_resid(problem), method.mint_shr_ridge, convention="fable")
    return W, {"shrinkage_lambda": lam}


#: The covariance estimators of ``MinTrace(method=...)``; the CLI, the config, the docs and the
#: error messages all read this table. Adding one = an entry here + its function + its test.
COVARIANCES: dict[str, Estimator] = {
    "ols": Estimator(lambda p, m: (w_ols(p.n), {}), "identity (OLS)", needs_residuals=False),
    "wls_struct": Estimator(
        lambda p, m: (w_struct(p.S), {}),
        "structural scaling: bottom series under each node",
        needs_residuals=False,
    ),
    "wls_var": Estimator(lambda p, m: (w_var(_resid(p)), {}), "in-sample residual variances"),
    "mint_cov": Estimator(
        lambda p, m: (w_cov(_resid(p)), {}),
        "sample covariance of the residuals",
        fallback="mint_shrink",
    ),
    "mint_shrink": Estimator(_shrink, "Schäfer-Strimmer shrunk covariance of the residuals"),
    "mint_cov_fable": Estimator(
        lambda p, m: (w_cov(_resid(p), convention="fable"), {}),
        "covariance of the residuals, fable's convention: uncentred, divided by T",
        fallback="mint_shrink_fable",
    ),
    "mint_shrink_fable": Estimator(
        _shrink_fable,
        "shrunk covariance, fable's convention: uncentred residuals / T, fabletools' lambda",
    ),
}
