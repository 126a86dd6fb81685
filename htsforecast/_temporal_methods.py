"""Array kernel of temporal and cross-temporal reconciliation (no pandas).

Arrays are ``(n_series, n_tnodes, P)``: series (cross-sectional nodes), the nodes of the temporal
hierarchy of one top-level period (``TemporalHierarchy.S`` row order) and top-level periods.
Reconciliation is done period by period with one ``W`` for all periods, as in thief and FoReco.

Temporal (Athanasopoulos et al. 2017; names as thief / FoReco):
``bu``; ``ols`` (W = I); ``struc`` (W = diag(S 1)); ``wlsv`` (one in-sample MSE per temporal
level, pooled over the level's residuals); ``wlsh`` (one MSE per temporal node); ``shr`` /
``sam`` (shrunk / sample covariance of the residuals stacked as one vector of all temporal nodes
per top-level period). Every W is a :class:`LowRankW` solved by the cross-sectional kernel
(:class:`ConstraintSolver`, :func:`mint_bottom`).

Cross-temporal (Di Fonzo & Girolimetto 2023; names as FoReco): the structure is
``S_cs ⊗ S_te`` with its rows permuted so that the bottom rows come last. ``ols``, ``struc``,
``wlsv`` (MSE per series and temporal level), ``wlsh`` (per series and temporal node) are
diagonal and go through the same kernel (never a dense W). ``bdshr``: one shrunk cross-sectional
covariance per temporal level, repeated on the diagonal blocks of the temporal nodes; it is
solved in structural (GLS) form ``(S' W⁻¹ S) b = S' W⁻¹ ŷ`` where
``S' W⁻¹ S = Σ_k G_k ⊗ B_k`` with ``G_k = S_cs' Σ_k⁻¹ S_cs`` (bottom × bottom, cross-sectional)
and ``B_k = Σ_{j in level k} s_j s_j'`` (temporal): only per-level ``n_cs × n_cs`` blocks and the
``m_cs m_te``-sized normal matrix are formed (the constraint form would carry a rank-Σ_k T_k
update, 200 s on tourism_large, against about a second here). ``tcs``: Kourentzes &
Athanasopoulos (2019), temporal reconciliation of every series, then the average over temporal
levels of the per-level cross-sectional projections applied to every temporal node.

Non-negative: an active-set method on the bottom values (set negatives to zero and re-project,
then free zeros whose gradient is negative), which stops at the KKT point of the NNLS problem
``min (y - S b)' W⁻¹ (y - S b), b >= 0`` (checked against ``scipy.optimize.nnls``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from htsforecast.errors import ReconciliationError
from htsforecast.reconciliation import _covariance as cov
from htsforecast.reconciliation._kernel import (
    ConstraintSolver,
    LowRankW,
    _solve_with_zeros,
    mint_bottom,
)
from htsforecast.reconciliation._methods import MinTrace, Problem

__all__ = [
    "TEMPORAL_METHODS",
    "CROSS_TEMPORAL_METHODS",
    "temporal_reconcile",
    "cross_temporal_reconcile",
    "Kron",
]

TEMPORAL_METHODS = {
    "bu": "bottom-up from the original frequency",
    "ols": "identity W",
    "struc": "structural scaling: W = diag(number of original periods summed)",
    "wlsv": "variance scaling: in-sample MSE per temporal level (thief's 'mse')",
    "wlsh": "hierarchy variance scaling: in-sample MSE per temporal node",
    "shr": "MinT shrinkage of the residuals stacked per top-level period",
    "sam": "MinT sample covariance of the stacked residuals (falls back to shr when singular)",
}
CROSS_TEMPORAL_METHODS = {
    "bu": "bottom-up from the bottom series at the original frequency",
    "ols": "identity W",
    "struc": "structural scaling: W = diag(S_cs 1 ⊗ S_te 1)",
    "wlsv": "in-sample MSE per series and temporal level",
    "wlsh": "in-sample MSE per series and temporal node",
    "bdshr": "block-diagonal shrunk cross-sectional covariance, one per temporal level",
    "tcs": "Kourentzes & Athanasopoulos (2019): temporal, then averaged cross-sectional",
}


# ------------------------------------------------------------------------ residual summaries
def level_mse(R: np.ndarray, node_level: np.ndarray) -> np.ndarray:
    """In-sample MSE (+ ridge) per series and temporal level, mapped to every temporal node.

    ``R`` is (n, n_t, N); returns (n, n_t). Reuses :func:`cov.w_var` on the residuals of each
    level pooled over its nodes and periods.
    """
    out = np.empty(R.shape[:2])
    for k in np.unique(node_level):
        rows = node_level == k
        pooled = R[:, rows, :].reshape(R.shape[0], -1)
        out[:, rows] = cov.w_var(pooled).d[:, None]
    return out


def node_mse(R: np.ndarray) -> np.ndarray:
    """In-sample MSE (+ ridge) per series and temporal node: (n, n_t)."""
    return cov.w_var(R.reshape(-1, R.shape[2])).d.reshape(R.shape[:2])


def _need(R: np.ndarray | None, method: str) -> np.ndarray:
    if R is None:
        raise ReconciliationError(
            f"{method!r} needs in-sample residuals at every temporal level (forecast with "
            "htsforecast.temporal.forecast_temporal, or give insample)."
        )
    return R


# ------------------------------------------------------------------------ non-negative
def active_set(
    solve_zero: Callable[[np.ndarray], np.ndarray],
    grad: Callable[[np.ndarray], np.ndarray],
    b0: np.ndarray,
    max_iter: int = 200,
) -> np.ndarray:
    """Non-negative least squares by an active set on the bottom values (one column).

    ``solve_zero(zero)`` returns the minimiser with the bottoms in ``zero`` fixed at 0;
    ``grad(b)`` the gradient ``S' W⁻¹ (S b - y)``. Negatives are fixed at zero and the rest
    re-projected; then the zero whose gradient is most negative is freed; repeated until the KKT
    conditions hold (b >= 0, gradient >= 0 on the zeros, 0 on the free set).
    """
    zero = b0 < 0
    if not zero.any():
        return b0
    b = b0
    scale = max(1.0, float(np.max(np.abs(b0))))
    for _ in range(max_iter):
        b = solve_zero(zero)
        new = (b < -1e-12 * scale) & ~zero
        if new.any():
            zero |= new
            continue
        b[zero] = 0.0
        g = grad(b)
        viol = zero & (g < -1e-9 * max(1.0, float(np.max(np.abs(g)))))
        if not viol.any():
            return np.maximum(b, 0.0)
        zero[np.flatnonzero(viol)[np.argmin(g[viol])]] = False
    warnings.warn("non-negative reconciliation did not converge; negatives clipped.", stacklevel=3)
    return np.maximum(b, 0.0)


def _lowrank_nonneg(S: sp.csr_matrix, W: LowRankW, Y: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Non-negative bottoms for every column of ``Y`` with the constraint-form kernel."""
    n, m = S.shape
    Wd = None if W.U is None else np.diag(W.d) + W.U @ W.U.T  # temporal W: n_t x n_t only
    out = B.copy()
    for c in np.flatnonzero((B < 0).any(axis=0)):
        y = Y[:, c]

        def grad(b: np.ndarray, y: np.ndarray = y) -> np.ndarray:
            r = S @ b - y
            return S.T @ (r / W.d if Wd is None else np.linalg.solve(Wd, r))

        def solve(z: np.ndarray, y: np.ndarray = y) -> np.ndarray:
            return _solve_with_zeros(S, W, y, z, n - m, m)

        out[:, c] = active_set(solve, grad, B[:, c])
    return out


def _solve(S: sp.csr_matrix, W: LowRankW, Y: np.ndarray, nonnegative: bool) -> np.ndarray:
    B = mint_bottom(ConstraintSolver(S, W), Y)
    return _lowrank_nonneg(S, W, Y, B) if nonnegative else B


# ------------------------------------------------------------------------ temporal
def temporal_W(method: str, S_te: sp.csr_matrix, node_level: np.ndarray, R: np.ndarray | None):
    """W of one series (``R``: (n_t, N) residuals) or None when W is common to all series."""
    if method == "ols":
        return cov.w_ols(S_te.shape[0])
    if method == "struc":
        return cov.w_struct(S_te)
    if method == "wlsv":
        return LowRankW(level_mse(_need(R, method)[None], node_level)[0])
    if method == "wlsh":
        return cov.w_var(_need(R, method))
    if method == "shr":
        return cov.w_shrink(_need(R, method))[0]
    if method == "sam":
        return cov.w_cov(_need(R, method))
    raise ReconciliationError(
        f"unknown temporal method {method!r}: use one of {', '.join(TEMPORAL_METHODS)}."
    )


def temporal_reconcile(
    method: str,
    F: np.ndarray,
    R: np.ndarray | None,
    S_te: sp.csr_matrix,
    node_level: np.ndarray,
    nonnegative: bool = False,
) -> np.ndarray:
    """Temporally reconcile every series: (n, n_t, P) -> (n, n_t, P), coherent."""
    n, nt, P = F.shape
    mt = S_te.shape[1]
    if method == "bu":
        B = F[:, nt - mt :, :]
        return np.einsum("jt,itp->ijp", S_te.toarray(), B)
    out = np.empty_like(F)
    if method in ("ols", "struc"):  # one W for all series: one solve for every column
        W = temporal_W(method, S_te, node_level, None)
        Y = F.transpose(1, 0, 2).reshape(nt, n * P)
        B = _solve(S_te, W, Y, nonnegative)
        return np.asarray(S_te @ B).reshape(nt, n, P).transpose(1, 0, 2)
    for i in range(n):
        W = temporal_W(method, S_te, node_level, None if R is None else R[i])
        try:
            B = _solve(S_te, W, F[i], nonnegative)
        except ReconciliationError as exc:
            if method != "sam":
                raise
            warnings.warn(f"temporal 'sam': {exc} Falling back to 'shr'.", stacklevel=3)
            return temporal_reconcile("shr", F, R, S_te, node_level, nonnegative)
        out[i] = S_te @ B
    return out


# ------------------------------------------------------------------------ cross-temporal
@dataclass
class Kron:
    """Cross-temporal structure ``S_cs ⊗ S_te`` with bottom rows last.

    Rows of the Kronecker product are ``(i, j)`` (series-major); ``perm`` orders them with every
    row that is an aggregate in either dimension first and the (bottom series, original
    frequency) rows last, so ``S[-m:]`` is the identity as the kernel requires.
    """

    S_cs: sp.csr_matrix
    S_te: sp.csr_matrix

    def __post_init__(self) -> None:
        self.S_cs, self.S_te = sp.csr_matrix(self.S_cs), sp.csr_matrix(self.S_te)
        (n, m), (nt, mt) = self.S_cs.shape, self.S_te.shape
        i, j = np.divmod(np.arange(n * nt), nt)
        bottom = (i >= n - m) & (j >= nt - mt)
        self.perm = np.concatenate([np.flatnonzero(~bottom), np.flatnonzero(bottom)])
        self.S = sp.csr_matrix(sp.kron(self.S_cs, self.S_te, format="csr")[self.perm])

    def vec(self, X: np.ndarray) -> np.ndarray:
        """(n, n_t, P) -> (n n_t, P) in the permuted row order."""
        return X.reshape(-1, X.shape[2])[self.perm]

    def full(self, B: np.ndarray) -> np.ndarray:
        """Bottoms (m m_t, P) -> every series and temporal node (n, n_t, P)."""
        (n, m), mt = self.S_cs.shape, self.S_te.shape[1]
        P = B.shape[1]
        X = np.asarray(self.S_cs @ B.reshape(m, mt * P)).reshape(n, mt, P)
        return np.einsum("jt,itp->ijp", self.S_te.toarray(), X)


def _diag_ct(method: str, K: Kron, R: np.ndarray | None, node_level: np.ndarray) -> LowRankW:
    if method == "ols":
        return cov.w_ols(K.S.shape[0])
    if method == "struc":
        return cov.w_struct(K.S)
    if method == "wlsv":
        return LowRankW(level_mse(_need(R, method), node_level).ravel()[K.perm])
    if method == "wlsh":
        return LowRankW(node_mse(_need(R, method)).ravel()[K.perm])
    raise ReconciliationError(
        f"unknown cross-temporal method {method!r}: use one of {', '.join(CROSS_TEMPORAL_METHODS)}."
    )


def level_residuals(R: np.ndarray, node_level: np.ndarray, k: int) -> np.ndarray:
    """Residuals of level ``k`` in time order: (n, N m/k)."""
    rows = np.flatnonzero(node_level == k)
    return R[:, rows, :].transpose(0, 2, 1).reshape(R.shape[0], -1)


def bdshr_system(K: Kron, R: np.ndarray, node_level: np.ndarray):
    """Normal matrix ``S' W⁻¹ S`` (dense, m m_t square) and the map ŷ -> ``S' W⁻¹ ŷ``."""
    Scs = K.S_cs.toarray()
    Ste = K.S_te.toarray()
    m, mt = Scs.shape[1], Ste.shape[1]
    M = np.zeros((m * mt, m * mt))
    WinvS, lams = {}, {}
    for k in np.unique(node_level):
        Wk, lams[int(k)] = cov.w_shrink(level_residuals(R, node_level, k))
        dense = np.diag(Wk.d) + (0 if Wk.U is None else Wk.U @ Wk.U.T)  # n_cs x n_cs block
        WinvS[k] = sla.cho_solve(sla.cho_factor(dense), Scs)
        rows = Ste[node_level == k]
        M += np.kron(Scs.T @ WinvS[k], rows.T @ rows)

    def rhs(F: np.ndarray) -> np.ndarray:
        out = np.zeros((m, mt, F.shape[2]))
        for j, k in enumerate(node_level):
            out += np.einsum("ib,ip->bp", WinvS[k], F[:, j, :])[:, None, :] * Ste[j][None, :, None]
        return out.reshape(m * mt, -1)

    return M, rhs, lams


def _bdshr(K: Kron, F: np.ndarray, R: np.ndarray, node_level: np.ndarray, nonnegative: bool):
    M, rhs, lams = bdshr_system(K, R, node_level)
    r = rhs(F)
    cho = sla.cho_factor(M)
    B = sla.cho_solve(cho, r)
    if nonnegative:
        for c in np.flatnonzero((B < 0).any(axis=0)):

            def solve_zero(zero: np.ndarray, c: int = int(c)) -> np.ndarray:
                free = np.flatnonzero(~zero)
                b = np.zeros(M.shape[0])
                b[free] = np.linalg.solve(M[np.ix_(free, free)], r[free, c])
                return b

            def grad_c(b: np.ndarray, c: int = int(c)) -> np.ndarray:
                return M @ b - r[:, c]

            B[:, c] = active_set(solve_zero, grad_c, B[:, c])
    return B, {"shrinkage_lambda": lams}


def _tcs(
    K: Kron,
    F: np.ndarray,
    R: np.ndarray | None,
    node_level: np.ndarray,
    te_method: str,
    cs_method: str,
) -> tuple[np.ndarray, dict]:
    """Kourentzes & Athanasopoulos (2019): temporal first, then the mean cs projection."""
    Ft = temporal_reconcile(te_method, F, R, K.S_te, node_level)
    n = K.S_cs.shape[0]
    Ps = []
    for k in np.unique(node_level):
        res = None if R is None else level_residuals(R, node_level, k)
        problem = Problem(S=K.S_cs, levels={}, residuals=res)
        fitted = MinTrace(cs_method).fit(problem, np.zeros((n, 1)))
        Ps.append(fitted.bottom(np.eye(n)))
    P = np.mean(Ps, axis=0)
    B = P @ Ft.reshape(n, -1)
    out = np.asarray(K.S_cs @ B).reshape(F.shape)
    return out, {"temporal": te_method, "cross_sectional": cs_method}


def cross_temporal_reconcile(
    method: str,
    K: Kron,
    F: np.ndarray,
    R: np.ndarray | None,
    node_level: np.ndarray,
    nonnegative: bool = False,
    tcs: tuple[str, str] = ("wlsv", "mint_shrink"),
) -> tuple[np.ndarray, dict]:
    """Cross-temporally reconcile ``F`` (n, n_t, P) -> (n, n_t, P) coherent in both dimensions."""
    if method == "tcs":
        if nonnegative:
            raise ReconciliationError("nonnegative=True is not available for 'tcs'.")
        return _tcs(K, F, R, node_level, *tcs)
    if method == "bu":
        m, mt = K.S_cs.shape[1], K.S_te.shape[1]
        B = F[-m:, -mt:, :].reshape(m * mt, -1)
        return K.full(B), {}
    if method == "bdshr":
        B, info = _bdshr(K, F, _need(R, method), node_level, nonnegative)
        return K.full(B), info
    W = _diag_ct(method, K, R, node_level)
    return K.full(_solve(K.S, W, K.vec(F), nonnegative)), {}
