"""Exact Gaussian interval variances ``diag(S P W_h P' S')`` of the MinTrace family, ~linear time.

With ``M = S P = I - W C' K^{-1} C`` (constraint form, ``K = C W C'``), ``W = D + U U'`` and the
per-horizon covariance ``W_h = E_h + U_h U_h'`` (diagonal + low rank), the variances are
``diag(M W_h M')``. ``M`` is dense, so applying it to all ``n`` unit columns costs O(n²). Here
the structure of a hierarchy is used instead:

1. **Border split.** ``K0 = D_a + A D_b A'`` couples two aggregates when they share a bottom
   series. The coarse aggregates (total, states, ...) couple with almost everything; they form a
   small *border* ``B``. Taking the coarsest aggregates into ``B`` until the rest falls apart into
   small connected blocks (e.g. one block per M5 item: the item and its item×state nodes) makes
   ``K0_LL`` block diagonal, and ``K0^{-1} = Bd + R Σ^{-1} R'`` exactly, with ``Bd`` the block
   inverse of ``K0_LL`` (zero on ``B``), ``R = [-K0_LL^{-1} K0_LB; I]`` and the Schur complement
   ``Σ = K0_BB - K0_BL K0_LL^{-1} K0_LB`` (dense, ``|B| x |B|``).
2. **Woodbury** for ``K = K0 + V V'`` (``V = C U``) adds rank ``r``.
3. Together ``M = Msp - X Y'`` where ``Msp = I - D C' Bd C`` is block diagonal (each block is the
   identity plus a rank-``|β|`` term) and ``X, Y`` are ``n x ρ`` with ``ρ = |B| + r``.
4. ``diag(M W_h M') = diag(Msp W_h Msp') - 2 rowsum((Msp W_h Y) ∘ X) + rowsum((X G) ∘ X)``,
   ``G = Y' W_h Y``; the first term needs ``C' Bd`` and ``C E_h C'`` only inside the blocks.

Cost per horizon O(nnz + n ρ²) instead of O(n² ...); every step is an exact identity (no
sampling, no truncation), so the result equals the dense computation to rounding.

When ``W`` has zero variances (``mint_cov``: pure low rank) ``K0`` is singular; then all
aggregates form the border and ``K`` (dense, already required to be small and non-singular by
the point solver) is factorised as a whole.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from htsforecast.errors import ReconciliationError
from htsforecast.reconciliation._kernel import LowRankW

__all__ = ["MinTraceVariance", "proportional_groups", "corr_scaled"]

MAX_BLOCK = 64  # largest leaf block: a bigger one moves its coarsest nodes to the border


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


def _border_split(A: sp.csr_matrix, max_block: int) -> tuple[np.ndarray, np.ndarray]:
    """Aggregates split into (border, labels): the coarsest first into the border until every
    connected block of the rest of ``A A'`` has at most ``max_block`` nodes. ``labels`` gives the
    block of each aggregate (-1 on the border)."""
    na = A.shape[0]
    graph = sp.csr_matrix((A @ A.T) != 0)
    order = np.argsort(-np.asarray(A.sum(axis=1)).ravel(), kind="stable")

    def blocks(k: int) -> np.ndarray | None:
        labels = np.full(na, -1)
        rest = np.sort(order[k:])
        if len(rest) == 0:
            return labels
        _, lab = connected_components(graph[rest][:, rest], directed=False)
        if np.bincount(lab).max() > max_block:
            return None
        labels[rest] = lab
        return labels

    lo, hi = 0, 1
    while hi < na and blocks(hi) is None:  # geometric search, then bisection
        lo, hi = hi, min(2 * hi, na)
    if blocks(0) is not None:
        hi = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if blocks(mid) is not None else (mid, hi)
    labels = blocks(hi)
    assert labels is not None
    return np.sort(order[:hi]), labels


def _block_inverse(K: sp.csr_matrix, labels: np.ndarray) -> sp.csr_matrix:
    """Inverse of the block-diagonal part of ``K`` on the nodes with ``labels >= 0``."""
    n = K.shape[0]
    inside = np.flatnonzero(labels >= 0)
    if len(inside) == 0:
        return sp.csr_matrix((n, n))
    lab = labels[inside]
    order = np.lexsort((inside, lab))
    nodes, lab = inside[order], lab[order]
    sizes = np.bincount(lab)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    rows, cols, vals = [], [], []
    for size in np.unique(sizes[sizes > 0]):
        blk = np.flatnonzero(sizes == size)
        idx = nodes[starts[blk][:, None] + np.arange(size)]  # (n_blocks, size)
        sub = K[idx.ravel()][:, idx.ravel()].tocoo()
        keep = (sub.row // size) == (sub.col // size)
        dense = np.zeros((len(blk), size, size))
        b = sub.row[keep] // size
        dense[b, sub.row[keep] % size, sub.col[keep] % size] = sub.data[keep]
        inv = np.linalg.inv(dense)
        rows.append(np.repeat(idx, size, axis=1).ravel())
        cols.append(np.tile(idx, (1, size)).ravel())
        vals.append(inv.ravel())
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )


def _cholesky(K: np.ndarray, what: str) -> np.ndarray:
    try:
        L = sla.cholesky(K, lower=True)
    except np.linalg.LinAlgError:
        L = None
    if L is None or not np.all(np.isfinite(L)):
        raise ReconciliationError(f"{what} is not positive definite: the covariance is singular.")
    return L


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
    """

    def __init__(self, S: sp.spmatrix, W: LowRankW, max_block: int = MAX_BLOCK) -> None:
        S = sp.csr_matrix(S)
        self.n, m = S.shape
        self.na = self.n - m
        self.A = S[: self.na]
        self.d = W.d
        self.Ct = sp.vstack([sp.identity(self.na, format="csr"), -self.A.T]).tocsr()
        if np.all(W.d > 0):
            self._sparse_border(W, max_block)
        else:
            self._dense(W)
        # Q = C' Bd (n x na, zero on the border columns); t1 = diag(C' Bd C)
        self.Q = (self.Ct @ self.Bd).tocsr()
        self.t1 = np.asarray(self.Q.multiply(self.Ct).sum(axis=1)).ravel()

    def C(self, x: np.ndarray) -> np.ndarray:
        """``C @ x`` (aggregates minus the sums of their bottoms)."""
        return x[: self.na] - self.A @ x[self.na :]

    def _k0(self, e: np.ndarray) -> sp.csr_matrix:
        """``C E C' = E_a + A E_b A'`` for the diagonal ``e``."""
        eb = e[self.na :]
        return (sp.diags(e[: self.na]) + (self.A.multiply(eb[None, :]) @ self.A.T)).tocsr()

    def _sparse_border(self, W: LowRankW, max_block: int) -> None:
        K0 = self._k0(W.d)
        border, labels = _border_split(self.A, max_block)
        self.Bd = _block_inverse(K0, labels)
        self.leaf = np.flatnonzero(labels >= 0)
        nb = len(border)
        R = np.zeros((self.na, nb))
        R[border, np.arange(nb)] = 1.0
        if nb:
            KxB = K0[:, border]
            R -= np.asarray((self.Bd @ KxB).todense())  # rows of the leaf part: -K_LL^{-1} K_LB
            sigma = KxB[border].toarray() + KxB[self.leaf].T @ R[self.leaf]  # Schur complement
            Ls = _cholesky(sigma, "the border Schur complement of C W C'")
            Phi1 = sla.solve_triangular(Ls, R.T, lower=True).T  # R Σ^{-1/2}'
        else:
            Phi1 = np.zeros((self.na, 0))
        Y = [self.Ct @ Phi1]
        X = [self.d[:, None] * Y[0]]
        if W.U is not None:
            V = self.C(W.U)
            Z = self.Bd @ V + Phi1 @ (Phi1.T @ V)  # K0^{-1} V
            Lm = _cholesky(np.eye(V.shape[1]) + V.T @ Z, "the low-rank update of C W C'")
            Phi2 = sla.solve_triangular(Lm, Z.T, lower=True).T  # Z Lm^{-T}
            Y2 = self.Ct @ Phi2
            X.append(sla.solve_triangular(Lm, W.U.T, lower=True).T - self.d[:, None] * Y2)
            Y.append(Y2)
        self.X, self.Y = np.hstack(X), np.hstack(Y)

    def _dense(self, W: LowRankW) -> None:
        """All aggregates on the border: ``K = C W C'`` dense (pure low-rank ``W``)."""
        K = self._k0(W.d).toarray()
        if W.U is not None:
            V = self.C(W.U)
            K += V @ V.T
        Lk = _cholesky(K, "C W C'")
        Phi = sla.solve_triangular(Lk, np.eye(self.na), lower=True).T  # K^{-1} = Phi Phi'
        Y = self.Ct @ Phi
        X = self.d[:, None] * Y
        if W.U is not None:
            X = X + W.U @ (V.T @ Phi)
        self.Bd = sp.csr_matrix((self.na, self.na))
        self.leaf = np.zeros(0, dtype=int)
        self.X, self.Y = X, Y

    def msp(self, Z: np.ndarray) -> np.ndarray:
        """``Msp @ Z = Z - D C' Bd C Z``."""
        return Z - self.d[:, None] * (self.Q @ self.C(Z))

    def diag(self, e: np.ndarray, Uh: np.ndarray | None) -> np.ndarray:
        """``diag(M W_h M')`` for ``W_h = diag(e) + Uh Uh'``, shape (n,)."""
        d, X, Y = self.d, self.X, self.Y
        out = e * (1.0 - 2.0 * d * self.t1)
        if len(self.leaf):
            KE = self._k0(e)
            t2 = np.asarray((self.Q @ KE).multiply(self.Q).sum(axis=1)).ravel()
            out += d**2 * t2
        G = _gram(np.sqrt(e)[:, None] * Y)
        WY = e[:, None] * Y
        if Uh is not None:
            UY = Uh.T @ Y
            G += _gram(UY)
            WY += Uh @ UY
            MU = self.msp(Uh)
            out += np.einsum("ij,ij->i", MU, MU)
        out -= 2.0 * np.einsum("ij,ij->i", self.msp(WY), X)
        out += _quad_rows(X, G)
        return out


def _gram(Y: np.ndarray) -> np.ndarray:
    """``Y' Y`` through BLAS syrk (half the flops of a product)."""
    if Y.shape[1] == 0:
        return np.zeros((0, 0))
    upper = sla.blas.dsyrk(1.0, np.asfortranarray(Y.T) if not Y.T.flags.f_contiguous else Y.T)
    return np.triu(upper) + np.triu(upper, 1).T


def _quad_rows(X: np.ndarray, G: np.ndarray) -> np.ndarray:
    """``diag(X G X')`` for a symmetric positive semi-definite ``G``: ``|L' x_i|²`` with the
    Cholesky factor ``G = L L'`` (triangular product), or ``x_i' G x_i`` if ``G`` is singular."""
    if G.shape[0] == 0:
        return np.zeros(X.shape[0])
    try:
        L = sla.cholesky(G, lower=True)
    except np.linalg.LinAlgError:
        return np.einsum("ij,ij->i", X @ G, X)
    XL = sla.blas.dtrmm(1.0, L, X.T, lower=1, trans_a=1)  # (X L)' = L' X', shape (ρ, n)
    return np.einsum("ij,ij->j", XL, XL)


def mint_variance(S: sp.spmatrix, W: LowRankW, sigma2: np.ndarray) -> np.ndarray:
    """Reconciled variances (n, h) of MinTrace with covariance ``W`` from base variances (n, h).

    ``W_h = D_s W D_s``, ``s = σ_h / sqrt(diag W)`` (see :func:`corr_scaled`); horizons with
    proportional base variances are computed once (:func:`proportional_groups`).
    """
    op = MinTraceVariance(S, W)
    out = np.empty_like(sigma2, dtype=float)
    for ref, factors in proportional_groups(sigma2):
        Wh = corr_scaled(W, np.sqrt(sigma2[:, ref]))
        v = op.diag(Wh.d, Wh.U)
        cols = np.flatnonzero(np.isfinite(factors))
        out[:, cols] = v[:, None] * factors[cols]
    return out
