"""Pure-array kernel of reconciliation: no pandas here.

Every method produces coherent forecasts ``S @ b`` from base forecasts ``yhat`` (n x k): the
bottom part ``b = P yhat`` is computed by the method, the kernel turns it into all nodes.

The MinTrace family is solved through the constraint form (Wickramasuriya et al. 2019, eq. 9;
the same algebra as fabletools and hierarchicalforecast)::

    ytilde = yhat - W C' (C W C')^{-1} C yhat,     C = [I_a  -A],  S = [A; I_b]

so the only linear system has the size of the *aggregate* nodes, and with ``W = D + U U'``
(diagonal plus rank-T residual part) ``C W C' = K0 + V V'`` where ``K0 = D_a + A D_b A'`` is
sparse. ``K0`` is factorised once by a border split (:mod:`._border`: the few coarse
aggregates as a dense Schur complement, the rest as independent small blocks; sparse LU only
when the border would be large), and the low-rank part is handled by the Woodbury identity, so
no n x n matrix is ever formed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from htsforecast.errors import ReconciliationError
from htsforecast.reconciliation._border import BorderFactor, border_split

K0Solver = Literal["auto", "dense", "border", "splu"]
DENSE_LIMIT = 1500  # aggregates up to which K0 is factorised densely
MAX_BORDER = 2000  # largest border (and border x aggregates <= MAX_BORDER_CELLS) for the split
MAX_BORDER_CELLS = 5e7

__all__ = ["LowRankW", "ConstraintSolver", "mint_bottom", "mint_bottom_nonnegative"]


@dataclass(frozen=True)
class LowRankW:
    """A covariance ``W = diag(d) + U U'`` of the base-forecast errors.

    Attributes
    ----------
    d : ndarray, shape (n,)
        Diagonal part (may be zero where ``U`` makes ``W`` positive definite).
    U : ndarray, shape (n, r) or None
        Low-rank part (scaled residuals), ``r`` is at most the number of residual periods.
    """

    d: np.ndarray
    U: np.ndarray | None = None

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """``W @ x`` for x of shape (n,) or (n, k)."""
        out = self.d[:, None] * x if x.ndim == 2 else self.d * x
        if self.U is not None:
            out = out + self.U @ (self.U.T @ x)
        return out

    def diag(self) -> np.ndarray:
        """The diagonal of ``W``."""
        if self.U is None:
            return self.d.copy()
        return self.d + np.einsum("ij,ij->i", self.U, self.U)


class ConstraintSolver:
    """Solves ``(C W C') z = r`` for the aggregate constraints of a hierarchy.

    Parameters
    ----------
    S : scipy.sparse matrix, shape (n, m)
        Summing matrix with the bottom rows last.
    W : LowRankW
        Error covariance.
    k0 : {"auto", "dense", "border", "splu"}
        How the sparse part ``K0`` is factorised: dense Cholesky (up to 1,500 aggregates under
        "auto"), the border split of :class:`BorderFactor` (above, when its border is small),
        or SuperLU (a large border). The answers agree to rounding.

    Attributes
    ----------
    factor : BorderFactor or None
        The border factorisation of ``K0`` when it was used (the interval variances reuse it).
    """

    def __init__(self, S: sp.spmatrix, W: LowRankW, k0: K0Solver = "auto") -> None:
        S = sp.csr_matrix(S)
        self.n, self.m = S.shape
        self.na = self.n - self.m
        self.A = S[: self.na]
        self.W = W
        self.k0 = k0
        self.factor: BorderFactor | None = None
        self._solve0, self._lowrank = self._factorize()

    # C x  and  C' z
    def C(self, x: np.ndarray) -> np.ndarray:
        """``C @ x`` = aggregates minus the sum of their bottoms, shape (n_a, k)."""
        return x[: self.na] - self.A @ x[self.na :]

    def Ct(self, z: np.ndarray) -> np.ndarray:
        """``C' @ z``, shape (n, k)."""
        return np.vstack([z, -(self.A.T @ z)])

    def _factorize(self) -> tuple[Callable[[np.ndarray], np.ndarray], tuple | None]:
        d, U = self.W.d, self.W.U
        da, db = d[: self.na], d[self.na :]
        if np.all(d > 0):
            solve0 = self._k0_solver(da, db)
            if U is None:
                return solve0, None
            V = self.C(U)  # (n_a, r)
            KV = solve0(V)
            M = np.eye(V.shape[1]) + V.T @ KV
            try:
                cho = sla.cho_factor(M)
            except np.linalg.LinAlgError:
                raise ReconciliationError(
                    "the low-rank covariance update is not positive "
                    "definite; use a ridge or mint_shrink."
                ) from None
            return solve0, (V, KV, cho)
        if U is None:
            raise ReconciliationError("W has zero variances and no low-rank part: it is singular.")
        # pure low rank (e.g. mint_cov): C W C' = V V' must be non-singular, so n_a <= rank
        if self.na > U.shape[1] and not np.any(d > 0):
            raise ReconciliationError(
                f"C W C' is singular: {self.na} aggregate constraints but the covariance has rank "
                f"at most {U.shape[1]}."
            )
        V = self.C(U)
        K = V @ V.T + np.diag(da) + (self.A.multiply(db[None, :]) @ self.A.T).toarray()
        try:
            cho = sla.cho_factor(K)
            ok = np.all(np.isfinite(cho[0])) and np.min(np.abs(np.diag(cho[0]))) > 1e-10 * np.sqrt(
                np.max(np.abs(np.diag(K)))
            )
        except np.linalg.LinAlgError:
            ok = False
        if not ok:
            raise ReconciliationError(
                "C W C' is numerically singular: the residual covariance does not span the "
                f"{self.na} aggregate constraints (e.g. the in-sample residuals are themselves "
                "coherent, as with naive or seasonal-naive models, or too few residual periods)."
            )
        return (lambda r: sla.cho_solve(cho, r)), None

    def _k0_solver(self, da: np.ndarray, db: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """A solver for ``K0 = D_a + A D_b A'`` chosen by ``self.k0``."""
        how = self.k0
        if how == "auto":
            how = "dense" if self.na <= DENSE_LIMIT else "border"
        if how == "border":
            split = border_split(self.A)
            nb = len(split[0])
            if self.k0 == "border" or (nb <= MAX_BORDER and nb * self.na <= MAX_BORDER_CELLS):
                self.factor = BorderFactor(self.A, da, db, border=split)
                return self.factor.solve
            how = "splu"
        K0 = (sp.diags(da) + self.A @ sp.diags(db) @ self.A.T).tocsc()
        return _sparse_spd_solver(K0, dense=how == "dense")

    def woodbury(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(V, K0⁻¹ V, Lm)`` of the low-rank update ``C W C' = K0 + V V'`` (``V = C U``,
        ``Lm`` the lower Cholesky factor of ``I + V' K0⁻¹ V``), or None without one. The
        interval variances reuse them instead of solving again."""
        if self._lowrank is None:
            return None
        V, KV, (c, lower) = self._lowrank
        return V, KV, np.tril(c) if lower else np.triu(c).T

    def solve(self, r: np.ndarray) -> np.ndarray:
        """``(C W C')^{-1} r`` for r of shape (n_a, k)."""
        z = self._solve0(r)
        if self._lowrank is not None:
            V, KV, cho = self._lowrank
            z = z - KV @ sla.cho_solve(cho, V.T @ z)
        return z


def _sparse_spd_solver(K: sp.csc_matrix, dense: bool) -> Callable[[np.ndarray], np.ndarray]:
    """Factorise a sparse SPD matrix once (dense Cholesky or SuperLU); return a solver (with one
    step of iterative refinement for SuperLU)."""
    if K.shape[0] == 0:
        return lambda r: np.zeros((0,) + r.shape[1:])
    if dense:  # small: dense Cholesky is faster and exact
        Kd = K.toarray()
        cho = sla.cho_factor(Kd)
        return lambda r: sla.cho_solve(cho, r)
    lu = spla.splu(K, permc_spec="MMD_AT_PLUS_A")

    def solve(r: np.ndarray) -> np.ndarray:
        x = lu.solve(r)
        return x + lu.solve(r - K @ x)  # iterative refinement: residual to machine precision

    return solve


def mint_bottom(solver: ConstraintSolver, yhat: np.ndarray) -> np.ndarray:
    """MinTrace bottom forecasts ``P yhat`` for yhat of shape (n, k)."""
    z = solver.solve(solver.C(yhat))
    ytilde = yhat - solver.W.matvec(solver.Ct(z))
    return ytilde[solver.na :]


def mint_bottom_nonnegative(
    S: sp.spmatrix, W: LowRankW, yhat: np.ndarray, b0: np.ndarray, max_iter: int = 50
) -> np.ndarray:
    """Non-negative MinTrace bottom forecasts by iterative set-to-zero and re-projection.

    For each column with negative bottom values, the negative bottoms are fixed at zero (added as
    equality constraints ``b_j = 0``) and the MinTrace projection is recomputed for the rest;
    repeated until no free bottom is negative (the active set only grows, so it stops after at
    most ``m`` rounds; ``max_iter`` caps it and the remainder is clipped). This is the
    "set-negative-to-zero" heuristic of Kourentzes & Athanasopoulos (2021) applied inside the
    MinTrace projection rather than after it; it is not the exact QP optimum in general, but it is
    coherent, non-negative and scales like MinTrace itself.

    Parameters
    ----------
    b0 : ndarray (m, k)
        The unconstrained MinTrace bottom forecasts of ``yhat`` (n, k).
    """
    S = sp.csr_matrix(S)
    n, m = S.shape
    na = n - m
    out = b0.copy()
    for col in np.flatnonzero((b0 < 0).any(axis=0)):
        zero = b0[:, col] < 0
        for _ in range(max_iter):
            b = _solve_with_zeros(S, W, yhat[:, col], zero, na, m)
            new = (b < -1e-12) & ~zero
            zero |= new
            if not new.any():
                break
        b[zero] = 0.0
        out[:, col] = np.maximum(b, 0.0)
    return out


def _solve_with_zeros(
    S: sp.csr_matrix, W: LowRankW, y: np.ndarray, zero: np.ndarray, na: int, m: int
) -> np.ndarray:
    """MinTrace bottoms of one column with the bottoms in ``zero`` constrained to 0."""
    free = np.flatnonzero(~zero)
    fixed = np.flatnonzero(zero)
    # rows: aggregates, fixed bottoms (now "aggregates" of nothing), free bottoms (identity)
    perm = np.concatenate([np.arange(na), na + fixed, na + free])
    S2 = sp.vstack(
        [S[:na][:, free], sp.csr_matrix((len(fixed), len(free))), sp.identity(len(free))]
    )
    W2 = LowRankW(W.d[perm], None if W.U is None else W.U[perm])
    b = np.zeros(m)
    if len(free):
        b[free] = mint_bottom(ConstraintSolver(S2, W2), y[perm][:, None])[:, 0]
    return b
