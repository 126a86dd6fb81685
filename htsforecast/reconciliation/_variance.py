"""Exact Gaussian interval variances ``diag(S P W_h P' S')`` of the MinTrace family, ~linear time.

With ``M = S P = I - W C' K^{-1} C`` (constraint form, ``K = C W C'``), ``W = D + U U'`` and the
per-horizon covariance ``W_h = E_h + U_h U_h'`` (diagonal + low rank), the variances are
``diag(M W_h M')``. ``M`` is dense, so applying it to all ``n`` unit columns costs O(n²). Here
the structure of a hierarchy is used instead:

1. **Border split** (:mod:`._border`, shared with the point solver). The coarse aggregates
   (total, states, ...) form a small *border* ``B``; the rest of ``K0 = D_a + A D_b A'`` falls
   apart into small blocks that share no bottoms, and ``K0⁻¹ = Bd + Φ1 Φ1'`` exactly, ``Bd`` the
   block inverse, ``Φ1 Φ1'`` the inverse Schur complement of the border (rank ``|B|``).
2. **Woodbury** for ``K = K0 + V V'`` (``V = C U``) adds ``- Φ2 Φ2'`` (rank ``r``); ``V``,
   ``K0⁻¹ V`` and the Cholesky factor of ``I + V' K0⁻¹ V`` are the point solver's, reused.
3. Together ``M = Msp - X Y'`` where ``Msp = I - D N``, ``N = C' Bd C`` block diagonal, and
   ``Y = C' Φ``, ``X`` are ``n x ρ`` with ``ρ = |B| + r`` (built once per fit).
4. Per horizon, ``W_h = E_h + U_h U_h'``:
   ``diag(M E_h M') = (Msp∘Msp) e - 2 (Msp∘XY') e + diag(X (Y' E_h Y) X')``; the first two are
   sparse (``N∘N`` and ``N∘XY'`` on the pattern of ``N``, precomputed) and are applied to all
   horizons as one product; the last is one ``n x ρ`` syrk and one triangular product. The
   low-rank part is ``|M U_h|²`` by rows, ``M U_h = Msp U_h - X (Φ' C U_h)``.

Cost per horizon ``O(nnz + n ρ²)`` instead of ``O(n²)``; the dense products run over chunks of
rows (no ``n x ρ`` temporaries beyond ``X`` and ``Y``); every step is an exact identity (no
sampling, no truncation), so the result equals the dense computation to rounding. Horizons
whose base variances are proportional are computed once.

When ``W`` has zero variances (``mint_cov``: pure low rank) ``K0`` is singular; then all
aggregates form the border and ``K`` (dense, already required to be small and non-singular by
the point solver) is factorised as a whole.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from htsforecast.reconciliation._border import (
    MAX_BLOCK,
    BorderFactor,
    blocks_by_size,
    cholesky,
    dense_blocks,
    from_blocks,
)
from htsforecast.reconciliation._kernel import LowRankW

__all__ = [
    "MinTraceVariance",
    "proportional_groups",
    "linear_basis",
    "corr_scaled",
    "mint_variance",
]


def corr_scaled(W: LowRankW, sigma: np.ndarray) -> LowRankW:
    """``W_h = D_s W D_s`` with ``s = σ / sqrt(diag W)``: the correlation of ``W`` scaled to the
    base standard deviations ``σ`` (hierarchicalforecast's 'normality' convention)."""
    s = sigma / np.sqrt(W.diag())
    return LowRankW(s**2 * W.d, None if W.U is None else s[:, None] * W.U)


def proportional_groups(sigma2: np.ndarray, rtol: float = 1e-12) -> list[tuple[int, np.ndarray]]:
    """Group horizons whose base variances are proportional across all nodes.

    ``W_h`` scales with the variances, so ``diag(M W_h M')`` of a proportional horizon is the
    same factor times that of its reference: computed once (exact to ``rtol``; e.g. naive and
    seasonal-naive intervals grow by one factor for every node).

    Returns
    -------
    list of (reference column, factors for every column, NaN where not in the group)
    """
    h = sigma2.shape[1]
    todo = np.ones(h, dtype=bool)
    groups = []
    for ref in range(h):
        if not todo[ref]:
            continue
        base = sigma2[:, ref]
        factors = np.full(h, np.nan)
        ok = base > 0  # nodes with zero variance must stay at zero
        if ok.any():
            ratio = sigma2[ok][:, todo] / base[ok, None]
            first = ratio[0]
            same = np.all(np.abs(ratio - first) <= rtol * np.abs(first), axis=0)
            same &= np.all(sigma2[~ok][:, todo] == 0, axis=0)
            cols = np.flatnonzero(todo)[same]
            factors[cols] = first[same]
        else:
            cols = np.flatnonzero(todo & np.all(sigma2 == 0, axis=0))
            factors[cols] = 0.0
        todo[cols] = False
        groups.append((ref, factors))
    return groups


class MinTraceVariance:
    """``M = S P = Msp - X Y'`` of a MinTrace projection, ready for ``diag(M W_h M')``.

    Parameters
    ----------
    S : scipy.sparse matrix (n, m)
        Summing matrix, bottom rows last.
    W : LowRankW
        The method's covariance ``D + U U'`` (defines ``P``).
    max_block : int
        Largest block of non-border aggregates.
    factor : BorderFactor, optional
        The point solver's border factorisation of ``K0`` for this ``W`` (reused as it is).
    woodbury : tuple (V, K0⁻¹ V, Lm), optional
        The point solver's low-rank update (:meth:`ConstraintSolver.woodbury`), reused.
    chunk : int
        Rows evaluated together in the dense per-horizon products (bounds the temporaries).
    """

    def __init__(
        self,
        S: sp.spmatrix,
        W: LowRankW,
        max_block: int = MAX_BLOCK,
        factor: BorderFactor | None = None,
        woodbury: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        chunk: int = 4096,
    ) -> None:
        S = sp.csr_matrix(S)
        self.n, m = S.shape
        self.na = self.n - m
        self.A = S[: self.na]
        self.At = self.A.T.tocsr()  # bottoms x aggregates: C' z = [z; -A' z]
        self.d = W.d
        self.chunk = max(1, chunk)
        labels = np.full(self.n, -1)  # block of every node (aggregates and their bottoms)
        if np.all(W.d > 0):
            if factor is None:
                factor = BorderFactor(self.A, W.d[: self.na], W.d[self.na :], max_block)
            Bd = factor.Bd
            self._sparse_border(factor, W, woodbury)
            labels[: self.na] = factor.labels
            AL = self.A[factor.leaf].tocoo()
            labels[self.na + AL.col] = factor.labels[factor.leaf][AL.row]
        else:
            Bd = sp.csr_matrix((self.na, self.na))
            self._dense(W)
        # Msp = I - D N with N = C' Bd C (n x n, block diagonal); Q = C' Bd
        Ct = sp.vstack([sp.identity(self.na, format="csr"), -self.At]).tocsr()
        Q = (Ct @ Bd).tocsr()
        self.DQ = (sp.diags(self.d) @ Q).tocsr()  # D C' Bd: Msp = I - DQ C
        N = (Q @ Ct.T).tocsr()
        self.t1 = N.diagonal()
        self.N2, self.Gamma = self._block_terms(N, labels)
        self.xy = np.einsum("ij,ij->i", self.X, self.Y)

    def C(self, x: np.ndarray) -> np.ndarray:
        """``C @ x`` (aggregates minus the sums of their bottoms)."""
        return x[: self.na] - self.A @ x[self.na :]

    def Ct(self, z: np.ndarray) -> np.ndarray:
        """``C' @ z`` = ``[z; -A' z]``, shape (n, k)."""
        out = np.empty((self.n, z.shape[1]))
        out[: self.na] = z
        np.negative(self.At @ z, out=out[self.na :])
        return out

    def _sparse_border(self, factor: BorderFactor, W: LowRankW, woodbury: tuple | None) -> None:
        """``K⁻¹ = Bd + Φ1 Φ1' - Φ2 Φ2'`` (border Schur complement, then Woodbury)."""
        Phi = factor.phi()
        nb = Phi.shape[1]
        if W.U is not None:
            if woodbury is None:
                V = self.C(W.U)
                Z = factor.Bd @ V + Phi @ (Phi.T @ V)  # K0⁻¹ V
                Lm = cholesky(np.eye(V.shape[1]) + V.T @ Z, "the low-rank update of C W C'")
            else:
                _, Z, Lm = woodbury
            Phi = np.hstack([Phi, _right_solve(Z, Lm)])  # Φ2 = Z Lm⁻ᵀ
        self.Phi = Phi
        self.Y = self.Ct(Phi)
        self.X = np.multiply(self.d[:, None], self.Y)
        if W.U is not None:  # X2 = U Lm⁻ᵀ - D Y2
            self.X[:, nb:] = _right_solve(W.U, Lm) - self.X[:, nb:]

    def _dense(self, W: LowRankW) -> None:
        """All aggregates on the border: ``K = C W C'`` dense (pure low-rank ``W``)."""
        K = (sp.diags(W.d[: self.na]) + self.A.multiply(W.d[None, self.na :]) @ self.A.T).toarray()
        if W.U is not None:
            V = self.C(W.U)
            K += V @ V.T
        Lk = cholesky(K, "C W C'")
        self.Phi = sla.solve_triangular(Lk, np.eye(self.na), lower=True).T  # K⁻¹ = Φ Φ'
        self.Y = self.Ct(self.Phi)
        self.X = self.d[:, None] * self.Y
        if W.U is not None:
            self.X += W.U @ (V.T @ self.Phi)

    def _block_terms(
        self, N: sp.csr_matrix, labels: np.ndarray, chunk: int = 4096
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """``N ∘ N`` and ``N ∘ (X Y')``, both on the blocks of ``N`` (dense products of the
        rows of ``X`` and ``Y`` inside each block, blocks of one size stacked)."""
        groups, squares, gammas = [], [], []
        for idx in blocks_by_size(labels):
            for lo in range(0, len(idx), max(1, chunk // idx.shape[1])):
                part = idx[lo : lo + max(1, chunk // idx.shape[1])]
                Nb = dense_blocks(N, part)
                XY = self.X[part] @ self.Y[part].transpose(0, 2, 1)
                groups.append(part)
                squares.append(Nb * Nb)
                gammas.append(Nb * XY)
        return from_blocks(groups, squares, self.n), from_blocks(groups, gammas, self.n)

    def _rows(self) -> Iterable[slice]:
        return (slice(lo, min(lo + self.chunk, self.n)) for lo in range(0, self.n, self.chunk))

    def _gram_e(self, e: np.ndarray) -> np.ndarray:
        """``Y' diag(e) Y`` (ρ x ρ), by BLAS syrk over chunks of rows."""
        rho = self.Y.shape[1]
        G = np.zeros((rho, rho), order="F")
        if rho == 0:
            return G
        root = np.sqrt(e)
        for rows in self._rows():
            Ys = root[rows, None] * self.Y[rows]
            G = sla.blas.dsyrk(1.0, Ys.T, beta=1.0, c=G, overwrite_c=1)
        return np.triu(G) + np.triu(G, 1).T

    def diag(self, e: np.ndarray, Uh: np.ndarray | None) -> np.ndarray:
        """``diag(M W_h M')`` for ``W_h = diag(e) + Uh Uh'``, shape (n,)."""
        return self.variances(e[:, None], [Uh])[:, 0]

    def variances(self, E: np.ndarray, Uhs: Iterable[np.ndarray | None]) -> np.ndarray:
        """``diag(M W_k M')`` for ``W_k = diag(E[:, k]) + U_k U_k'``, shape (n, k).

        ``diag(M E M') = (M ∘ M) e`` is split by ``M = Msp - X Y'``: the block-sparse terms of
        all horizons are one sparse product each; ``diag(X (Y' E Y) X')`` costs ``2 n ρ²`` for
        each column of a basis of ``E`` (:func:`linear_basis`); ``|M U_k|²`` by rows needs
        ``M U_k = Msp U_k - X (Φ' C U_k)``. The dense products run over chunks of rows.
        """
        d = self.d[:, None]
        out = E * (1.0 - 2.0 * d * self.t1[:, None] - 2.0 * self.xy[:, None])
        out += d**2 * (self.N2 @ E) + 2.0 * d * (self.Gamma @ E)
        basis, coef = linear_basis(E)
        factors = [_psd_factor(self._gram_e(E[:, k])) if np.any(E[:, k]) else None for k in basis]
        q = np.zeros((self.n, len(basis)))
        for rows in self._rows():
            for j, L in enumerate(factors):
                if L is not None:
                    q[rows, j] = _quad_rows(self.X[rows], L)
        out += q @ coef
        for k, Uh in enumerate(Uhs):
            if Uh is not None:
                V = self.C(Uh)
                Z, DQV = self.Phi.T @ V, self.DQ @ V
                for rows in self._rows():  # -(M U_h) = X Φ' C U_h + D N U_h - U_h
                    F = self.X[rows] @ Z
                    F += DQV[rows]
                    F -= Uh[rows]
                    out[rows, k] += np.einsum("ij,ij->i", F, F)
        return out


def linear_basis(Z: np.ndarray, rtol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Fewest columns ``B`` of ``Z`` (n, g), with coefficients (len(B), g), that give every
    column of ``Z`` as ``Z[:, B] @ coef`` to ``rtol`` of each entry (after scaling every row
    to a largest entry of 1; rows of zeros stay zero).

    Base variances that grow like a low-degree polynomial in the horizon (ETS: affine for
    ``ANN``, cubic for ``AAN``) need 2-4 columns however long the horizon. The check is entry
    by entry, so a column is only ever replaced by a combination that reproduces it.
    """
    n, g = Z.shape
    scale = np.max(np.abs(Z), axis=1, keepdims=True) if n else np.ones((0, 1))
    Zs = Z / np.where(scale > 0, scale, 1.0)
    if g > 1:
        piv = sla.qr(Zs, mode="r", pivoting=True)[1]
        for k in range(1, g):
            basis = np.sort(piv[:k])
            coef = np.linalg.lstsq(Zs[:, basis], Zs, rcond=None)[0]
            if np.all(np.abs(Zs[:, basis] @ coef - Zs) <= rtol * np.abs(Zs) + 1e-15):
                return basis, coef
    return np.arange(g), np.eye(g)


def _right_solve(B: np.ndarray, L: np.ndarray) -> np.ndarray:
    """``B L⁻ᵀ`` for a lower triangular ``L`` (BLAS trsm from the right, no transposes)."""
    if L.shape[0] == 0:
        return np.zeros(B.shape)
    return sla.blas.dtrsm(1.0, L, B, side=1, lower=1, trans_a=1)


def _psd_factor(G: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(L, True)`` with ``G = L L'`` (Cholesky), or ``(G, False)`` if ``G`` is singular."""
    if G.shape[0] == 0:
        return G, True
    try:
        return sla.cholesky(G, lower=True), True
    except np.linalg.LinAlgError:
        return G, False


def _quad_rows(X: np.ndarray, factor: tuple[np.ndarray, bool]) -> np.ndarray:
    """``diag(X G X')`` for a symmetric positive semi-definite ``G`` given by
    :func:`_psd_factor`: ``|L' x_i|²`` (triangular product), or ``x_i' G x_i`` if singular."""
    L, is_cholesky = factor
    if L.shape[0] == 0:
        return np.zeros(X.shape[0])
    if not is_cholesky:
        return np.einsum("ij,ij->i", X @ L, X)
    XL = sla.blas.dtrmm(1.0, L, X.T, lower=1, trans_a=1)  # (X L)' = L' X', shape (ρ, rows)
    return np.einsum("ij,ij->j", XL, XL)


def mint_variance(
    S: sp.spmatrix,
    W: LowRankW,
    sigma2: np.ndarray,
    factor: BorderFactor | None = None,
    woodbury: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    chunk: int = 4096,
) -> np.ndarray:
    """Reconciled variances (n, h) of MinTrace with covariance ``W`` from base variances (n, h).

    ``W_h = D_s W D_s``, ``s = σ_h / sqrt(diag W)`` (see :func:`corr_scaled`); horizons with
    proportional base variances are computed once (:func:`proportional_groups`), the others
    together (:meth:`MinTraceVariance.variances`). ``factor``: the point solver's
    :class:`BorderFactor` of ``K0`` for this ``W``, and ``woodbury`` its low-rank update
    (:meth:`~htsforecast.reconciliation._kernel.ConstraintSolver.woodbury`), reused;
    ``chunk``: rows per dense product (:class:`MinTraceVariance`).
    """
    op = MinTraceVariance(S, W, factor=factor, woodbury=woodbury, chunk=chunk)
    groups = proportional_groups(sigma2)
    scale = np.sqrt(sigma2[:, [ref for ref, _ in groups]] / W.diag()[:, None])
    U, buf = W.U, None if W.U is None else np.empty(W.U.shape)  # C order: row slices
    Uhs = (
        None if U is None else np.multiply(scale[:, k, None], U, out=buf)
        for k in range(len(groups))
    )
    v = op.variances(scale**2 * W.d[:, None], Uhs)
    out = np.empty_like(sigma2, dtype=float)
    for k, (_, factors) in enumerate(groups):
        cols = np.flatnonzero(np.isfinite(factors))
        out[:, cols] = v[:, k, None] * factors[cols]
    return out
