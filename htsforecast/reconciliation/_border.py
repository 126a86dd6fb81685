"""``K0 = D_a + A D_b A'`` factorised by a border split: the sparse part of ``C W C'``.

``K0`` couples two aggregates when they share a bottom series. The coarse aggregates (total,
states, stores ...) couple with almost everything, so a general sparse LU (minimum-degree
ordering) fills in badly around them. Here they are taken out first, into a small *border*
``B``, until the remaining aggregates fall apart into small connected blocks (one M5 item: the
item and its item x state nodes). Then, exactly,

    K0⁻¹ = Bd + R Σ⁻¹ R',   R = [-K_LL⁻¹ K_LB; I],   Σ = K_BB - K_BL K_LL⁻¹ K_LB,

with ``Bd`` the inverse of the block-diagonal ``K_LL`` (zero on ``B``) and ``Σ`` the dense
``|B| x |B|`` Schur complement (Cholesky). A solve costs one sparse product with ``Bd`` and two
thin dense products with ``R``; ``K0`` itself is never formed (products with it go through
``A``). The same factor serves the point solver and the interval variances.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from htsforecast.errors import ReconciliationError

__all__ = ["BorderFactor", "border_split", "MAX_BLOCK"]

MAX_BLOCK = 64  # largest leaf block: a bigger one moves its coarsest nodes to the border


def _components(A: sp.csr_matrix, rest: np.ndarray) -> np.ndarray:
    """Connected blocks of the aggregates ``rest`` (linked when they share a bottom), labelled
    0, 1, ... through the bipartite aggregate-bottom graph (``O(nnz A)``, no ``A A'``)."""
    sub = A[rest].tocoo()
    k, m = sub.shape
    graph = sp.csr_matrix((np.ones(sub.nnz), (sub.row, k + sub.col)), shape=(k + m, k + m))
    _, lab = connected_components(graph, directed=False)
    return np.unique(lab[:k], return_inverse=True)[1].ravel()


def border_split(A: sp.spmatrix, max_block: int = MAX_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Aggregates split into (border, labels).

    The coarsest aggregates (most bottoms) go into the border, as few as possible, until every
    connected block of the rest has at most ``max_block`` aggregates (geometric search, then
    bisection on the number taken). ``labels`` gives the block of each aggregate (-1 on the
    border); two aggregates in different blocks share no bottom series.
    """
    A = sp.csr_matrix(A)
    na = A.shape[0]
    order = np.argsort(-np.asarray(A.sum(axis=1)).ravel(), kind="stable")

    def blocks(k: int) -> np.ndarray | None:
        labels = np.full(na, -1)
        rest = np.sort(order[k:])
        if len(rest) == 0:
            return labels
        lab = _components(A, rest)
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


def blocks_by_size(labels: np.ndarray) -> list[np.ndarray]:
    """The nodes with ``labels >= 0`` as blocks, grouped by block size: a list of index arrays
    of shape (n_blocks, size), one per size present."""
    inside = np.flatnonzero(labels >= 0)
    if len(inside) == 0:
        return []
    lab = labels[inside]
    order = np.lexsort((inside, lab))
    nodes, lab = inside[order], lab[order]
    sizes = np.bincount(lab)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    out = []
    for size in np.unique(sizes[sizes > 0]):
        blk = np.flatnonzero(sizes == size)
        out.append(nodes[starts[blk][:, None] + np.arange(size)])
    return out


def dense_blocks(K: sp.spmatrix, idx: np.ndarray) -> np.ndarray:
    """The diagonal blocks ``K[idx[k]][:, idx[k]]`` as one array (n_blocks, size, size)."""
    nblk, size = idx.shape
    sub = sp.csr_matrix(K)[idx.ravel()][:, idx.ravel()].tocoo()
    keep = (sub.row // size) == (sub.col // size)
    out = np.zeros((nblk, size, size))
    out[sub.row[keep] // size, sub.row[keep] % size, sub.col[keep] % size] = sub.data[keep]
    return out


def from_blocks(groups: list[np.ndarray], values: list[np.ndarray], n: int) -> sp.csr_matrix:
    """The (n, n) sparse matrix with the dense blocks ``values[g][k]`` on ``groups[g][k]``."""
    if not groups:
        return sp.csr_matrix((n, n))
    rows = [np.repeat(idx, idx.shape[1], axis=1).ravel() for idx in groups]
    cols = [np.tile(idx, (1, idx.shape[1])).ravel() for idx in groups]
    vals = np.concatenate([v.ravel() for v in values])
    return sp.csr_matrix((vals, (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def block_inverse(K: sp.spmatrix, labels: np.ndarray) -> sp.csr_matrix:
    """Inverse of the block-diagonal part of ``K`` on the nodes with ``labels >= 0`` (blocks of
    equal size inverted together as one stacked array)."""
    groups = blocks_by_size(labels)
    inv = [np.linalg.inv(dense_blocks(K, idx)) for idx in groups]
    return from_blocks(groups, inv, K.shape[0])


def cholesky(K: np.ndarray, what: str) -> np.ndarray:
    """Lower Cholesky factor, or a :class:`ReconciliationError` naming ``what``."""
    if K.shape[0] == 0:
        return np.zeros((0, 0))
    try:
        L = sla.cholesky(K, lower=True)
    except np.linalg.LinAlgError:
        L = None
    if L is None or not np.all(np.isfinite(L)):
        raise ReconciliationError(f"{what} is not positive definite: the covariance is singular.")
    return L


class BorderFactor:
    """``K0 = diag(da) + A diag(db) A'`` (aggregates x aggregates), factorised by a border split.

    Parameters
    ----------
    A : scipy.sparse matrix (n_a, m)
        Aggregation rows of ``S``.
    da, db : ndarray (n_a,), (m,)
        Positive variances of the aggregates and of the bottom series.
    max_block : int
        Largest block of non-border aggregates.
    border : tuple (border, labels), optional
        A split from :func:`border_split` to reuse (it depends on ``A`` only).

    Attributes
    ----------
    border, labels, leaf : ndarray
        Border aggregates, block label of every aggregate (-1 on the border), non-border ones.
    Bd : scipy.sparse.csr_matrix (n_a, n_a)
        Inverse of the block-diagonal ``K_LL`` (zero rows and columns on the border).
    R : ndarray (n_a, |B|)
        ``[-K_LL⁻¹ K_LB; I]`` in aggregate order; ``Ls`` the Cholesky factor of ``Σ``.
    """

    def __init__(
        self,
        A: sp.spmatrix,
        da: np.ndarray,
        db: np.ndarray,
        max_block: int = MAX_BLOCK,
        border: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.A = sp.csr_matrix(A)
        self.da, self.db = da, db
        self.border, self.labels = border if border is not None else border_split(A, max_block)
        self.leaf = np.flatnonzero(self.labels >= 0)
        na, nb = self.A.shape[0], len(self.border)
        Ad = self.A.multiply(db[None, :]).tocsr()
        AL = sp.diags((self.labels >= 0).astype(float)) @ self.A  # border rows zeroed
        KLL = sp.diags(da * (self.labels >= 0)) + AL.multiply(db[None, :]) @ AL.T
        self.Bd = block_inverse(KLL, self.labels)
        KxB = (Ad @ self.A[self.border].T).tocsr()  # K0[:, border]: A D_b A' part ...
        KxB = KxB + sp.csr_matrix((da[self.border], (self.border, np.arange(nb))), (na, nb))
        R = np.zeros((na, nb))
        R[self.border, np.arange(nb)] = 1.0
        if nb:
            R -= (self.Bd @ KxB).toarray()  # leaf rows: -K_LL⁻¹ K_LB (Bd is zero on the border)
        sigma = KxB[self.border].toarray() + KxB[self.leaf].T @ R[self.leaf]
        self.R = R
        self.Ls = cholesky(sigma, "the border Schur complement of C W C'")

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """``K0 @ x`` through ``A`` (``K0`` is not formed), x of shape (n_a, k)."""
        return self.da[:, None] * x + self.A @ (self.db[:, None] * (self.A.T @ x))

    def phi(self) -> np.ndarray:
        """``Φ = R Ls⁻ᵀ`` (n_a, |B|): ``K0⁻¹ = Bd + Φ Φ'``."""
        if self.R.shape[1] == 0:
            return self.R
        return sla.solve_triangular(self.Ls, self.R.T, lower=True).T

    def solve(self, r: np.ndarray, refine: int = 1) -> np.ndarray:
        """``K0⁻¹ r`` for r of shape (n_a, k), with ``refine`` steps of iterative refinement."""
        x = self._solve(r)
        for _ in range(refine):
            x = x + self._solve(r - self.matvec(x))
        return x

    def _solve(self, r: np.ndarray) -> np.ndarray:
        x = self.Bd @ r
        if self.R.shape[1]:
            x += self.R @ sla.cho_solve((self.Ls, True), self.R.T @ r)
        return x
