"""One summary line per :func:`reconcile` call instead of one warning per model x method.

Reconciling several models with several MinTrace methods used to print the same warning (e.g.
"12 of 240 residual periods have NaN") once per fit, each with a source line inside htsforecast.
:func:`summarised_warnings` records the warnings raised inside ``reconcile``, then emits
``ResidualGapWarning`` as one line that says which nodes cause it and why, and every other
warning once (with a repeat count), attributed to the caller's line.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from htsforecast.reconciliation._covariance import ResidualGapWarning

__all__ = ["summarised_warnings", "external_stacklevel"]


def external_stacklevel() -> int:
    """``stacklevel`` that points at the first frame outside htsforecast (the user's call)."""
    frame: Any = sys._getframe(1)
    level = 1
    while frame is not None and (
        frame.f_globals.get("__name__", "").startswith("htsforecast")
        or frame.f_code.co_filename.endswith("contextlib.py")
    ):
        frame, level = frame.f_back, level + 1
    return level


@contextmanager
def summarised_warnings(node_ids: Sequence[str]) -> Iterator[None]:
    """Record warnings raised in the block; re-emit them summarised on exit."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    gaps = [w.message for w in caught if isinstance(w.message, ResidualGapWarning)]
    others: dict[tuple[type, str], int] = {}
    for w in caught:
        if not isinstance(w.message, ResidualGapWarning):
            key = (w.category, str(w.message))
            others[key] = others.get(key, 0) + 1
    level = external_stacklevel()
    if gaps:
        warnings.warn(_gap_summary(gaps, node_ids), stacklevel=level)
    for (category, message), count in others.items():
        suffix = f" ({count} times)" if count > 1 else ""
        warnings.warn(message + suffix, category, stacklevel=level)


def _gap_summary(gaps: list[ResidualGapWarning], node_ids: Sequence[str]) -> ResidualGapWarning:
    """One warning for many: the distinct period counts, the nodes and why (nestable)."""
    rows = np.unique(np.concatenate([g.rows for g in gaps]))
    names = [node_ids[r] for r in rows[:3] if r < len(node_ids)]
    pairs = sorted({p for g in gaps for p in g.pairs})
    fits = sum(g.fits for g in gaps)
    periods = ", ".join(f"{d} of {t}" for d, t in pairs)
    message = (
        f"{periods} residual periods have NaN for some node and were dropped from the "
        f"covariance estimate ({fits} MinTrace fit(s): mint_cov/mint_shrink). Why: "
        f"{len(rows)} node(s) have no in-sample residual in those periods, e.g. "
        f"{', '.join(repr(n) for n in names)}; their model gives no fitted value there (a "
        "seasonal naive's first season) or their history starts later. Fit models with "
        "fitted values over a common window, or use wls_var/wls_struct/ols, to use every period."
    )
    return ResidualGapWarning(message, pairs, rows, fits)
