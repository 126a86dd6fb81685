"""Interval rows of ``reconcile_scale.py`` and the 250,000-series anchor row.

Interval rows: for each size, every projection method is timed through ``reconcile`` without
intervals and with Gaussian 80/95 % intervals (``diag(S P W_h P' S')``), on the grouped
synthetic hierarchy, with two kinds of base intervals:

- ``prop``: ``σ_ih = σ_i sqrt(h)`` (seasonal-naive-like: every node's variance grows by the same
  factor, so the reconciled variances of all horizons follow from one),
- ``general``: ``σ_ih = σ_i sqrt(1 + a_i (h - 1))`` with a random ``a_i`` per node (ETS-like,
  as simple exponential smoothing: no two horizons are proportional, so the low-rank part is
  computed per horizon; the variances are affine in ``h``, so the diagonal part needs two),
- ``random``: ``σ_ih = σ_i u_ih`` with independent ``u_ih`` (the worst case: every horizon is
  its own computation, diagonal part included).

The peer is hierarchicalforecast's ``intervals_method="normality"`` (dense classes; run while
its dense n x n matrices fit in memory), compared as ``max |ours - peer| / level`` over the
bounds. The anchor row times points at 250,000 bottom series against the published figure
(WLS of 249,808 series in 1.43 s; Wickramasuriya, Turlach & Hyndman 2020, other hardware).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from _synthetic import MODEL, level_of_series, make_synthetic
from scipy.stats import norm
from threadpoolctl import threadpool_limits

INTERVAL_METHODS = {
    "bottom_up": ("BottomUp()", "BottomUp()"),
    "ols": ("MinTrace('ols')", "MinTrace(method='ols')"),
    "wls_struct": ("MinTrace('wls_struct')", "MinTrace(method='wls_struct')"),
    "wls_var": ("MinTrace('wls_var')", "MinTrace(method='wls_var')"),
    "mint_shrink": ("MinTrace('mint_shrink')", "MinTrace(method='mint_shrink')"),
}
LEVELS = [80, 95]
PEER_MAX_NODES = 2_000  # the peer forms dense n x n matrices (minutes each at 7,000 nodes here)
ANCHOR = 1.43  # s, WLS reconciliation of 249,808 series (Wickramasuriya, Turlach & Hyndman 2020)


def with_intervals(syn, kind: str, seed: int = 0):
    """``syn.Y_hat_df`` with ``-lo-L`` / ``-hi-L`` columns of the given kind."""
    rng = np.random.default_rng(seed)
    n, h = syn.yhat.shape
    sd = np.nanstd(syn.y - syn.fitted, axis=1)[:, None]
    steps = np.arange(1, h + 1)[None, :]
    if kind == "prop":
        sigma = sd * np.sqrt(steps)
    elif kind == "random":
        sigma = sd * rng.uniform(0.5, 2.0, size=(n, h))
    else:
        sigma = sd * np.sqrt(1.0 + rng.uniform(0.2, 2.0, size=(n, 1)) * (steps - 1))
    df = syn.Y_hat_df.copy()
    for lv in LEVELS:
        z = norm.ppf(0.5 + lv / 200)
        df[f"{MODEL}-lo-{lv}"] = (syn.yhat - z * sigma).ravel()
        df[f"{MODEL}-hi-{lv}"] = (syn.yhat + z * sigma).ravel()
    return df


def _best(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def _timed(fn) -> tuple[float, float, object]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def _paired(points, intervals, repeats: int) -> tuple[dict, object]:
    """Medians of wall and CPU times of ``points()`` and ``intervals()``, run alternately (so
    load on a shared machine hits both alike); CPU time (one BLAS thread) is the work done,
    wall time includes waiting for the shared cores. Returns them and the last result."""
    times: dict[str, list[float]] = {"points": [], "intervals": [], "points_cpu": [],
                                     "intervals_cpu": []}  # fmt: skip
    out = None
    for _ in range(repeats):
        for key, fn in (("points", points), ("intervals", intervals)):
            wall, cpu, out = _timed(fn)
            times[key].append(wall)
            times[key + "_cpu"].append(cpu)
    return {k: float(np.median(v)) for k, v in times.items()}, out


def _bounds(frame, cols: dict[str, str], node_ids) -> np.ndarray:
    """Stack the interval bounds named in ``cols`` (frame column -> key) in node order."""
    parts = []
    for col in cols:
        wide = frame.pivot(index="unique_id", columns="ds", values=col).loc[node_ids]
        parts.append(wide.to_numpy())
    return np.concatenate(parts, axis=1)


def interval_rows(
    size: int, kinds=("prop", "general"), repeats: int = 3, log=print, methods=None
) -> list:
    """Time every method with and without intervals at ``size`` bottom series (medians of
    ``repeats`` alternating runs)."""
    import htsforecast.reconciliation as R

    syn = make_synthetic(size, "grouped")
    hier, level = syn.hier, level_of_series(syn.y)
    rows = []
    for kind in kinds:
        Y_hat_df = with_intervals(syn, kind)
        for key, (ours_ctor, peer_ctor) in INTERVAL_METHODS.items():
            if methods is not None and key not in methods:
                continue
            method = eval(ours_ctor, vars(R))

            def run(lv, Y_hat_df=Y_hat_df, method=method):
                return R.reconcile(
                    Y_hat_df, hier, {"m": method}, Y_df=syn.Y_df, level=lv,
                    intervals="gaussian" if lv else None,
                )  # fmt: skip

            medians, rec = _paired(lambda: run(None), lambda: run(LEVELS), repeats)
            fc = rec.forecasts[rec.forecasts["method"] == "m"]
            ours = _bounds(fc, {f"yhat_{s}_{lv}": 0 for lv in LEVELS for s in ("lo", "hi")},
                           hier.node_ids)  # fmt: skip
            row = {"size": size, "nodes": hier.n_nodes, "kind": kind, "method": key, **medians}
            if hier.n_nodes <= PEER_MAX_NODES:
                row.update(_peer(syn, Y_hat_df, peer_ctor, ours, level))
            log(_line(row))
            rows.append(row)
    return rows


def _peer(syn, Y_hat_df, ctor: str, ours: np.ndarray, level: np.ndarray) -> dict:
    try:
        import hierarchicalforecast.methods as HM
        from hierarchicalforecast.core import HierarchicalReconciliation
    except ImportError:
        return {"peer": None}
    S_df, tags = syn.hier.to_nixtla()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hr = HierarchicalReconciliation([eval(ctor, vars(HM))])

        def call():
            return hr.reconcile(Y_hat_df=Y_hat_df, Y_df=syn.Y_df, S_df=S_df, tags=tags,
                                level=LEVELS, intervals_method="normality")  # fmt: skip

        t, rec = _best(call, 1)
    name = [
        c for c in rec.columns if c.startswith(MODEL + "/") and "-lo-" not in c and "-hi-" not in c
    ][0]
    cols = {f"{name}-{s}-{lv}": 0 for lv in LEVELS for s in ("lo", "hi")}
    theirs = _bounds(rec, cols, syn.hier.node_ids)
    diff = np.max(np.abs(ours - theirs) / level[:, None])
    return {"peer": t, "diff": float(diff)}


def _line(r: dict) -> str:
    peer = f", peer {r['peer']:.2f}s, diff {r['diff']:.1e}" if r.get("peer") else ""
    return (f"[{r['size']}] {r['kind']:7s} {r['method']:11s} points {r['points']:.2f}s "
            f"intervals {r['intervals']:.2f}s ({r['intervals'] / r['points']:.2f}x; CPU "
            f"{r['points_cpu']:.2f}s / {r['intervals_cpu']:.2f}s = "
            f"{r['intervals_cpu'] / r['points_cpu']:.2f}x){peer}")  # fmt: skip


def render_intervals(rows: list[dict]) -> str:
    head = ["bottom", "nodes", "base σ", "method", "points (s)", "+ intervals (s)", "ratio",
            "points CPU (s)", "+ intervals CPU (s)", "CPU ratio", "peer normality (s)",
            "max diff / level"]  # fmt: skip
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        peer = f"{r['peer']:.2f}" if r.get("peer") else "— (dense n×n)"
        diff = f"{r['diff']:.1e}" if r.get("peer") else "—"
        out.append(
            f"| {r['size']:,} | {r['nodes']:,} | {r['kind']} | {r['method']} | {r['points']:.2f} "
            f"| {r['intervals']:.2f} | {r['intervals'] / r['points']:.2f}× "
            f"| {r['points_cpu']:.2f} | {r['intervals_cpu']:.2f} "
            f"| {r['intervals_cpu'] / r['points_cpu']:.2f}× | {peer} | {diff} |"
        )
    return "\n".join(out)


def anchor_rows(size: int = 250_000, T: int = 36, log=print) -> str:
    """Points at 250,000 bottom series (kernel on arrays, and the frame API) vs the anchor."""
    import htsforecast.reconciliation as R
    from htsforecast.reconciliation._arrays import problem_of as _problem
    from htsforecast.reconciliation._methods import Problem

    t0 = time.perf_counter()
    syn = make_synthetic(size, "grouped", T=T)
    log(f"[{size}] {syn.hier.n_nodes} nodes, data {time.perf_counter() - t0:.0f}s")
    p0 = _problem(syn.hier)
    problem = Problem(p0.S, p0.levels, p0.default_path, syn.y, syn.y - syn.fitted)
    lines = ["| method | bottom | nodes | kernel (s) | kernel CPU (s) | reconcile() (s) "
             "| anchor WLS (s) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for key in ("wls_var", "mint_shrink"):
        method = R.MinTrace(key)

        def kernel(method=method):
            return syn.hier.S @ method.fit(problem, syn.yhat).bottom(syn.yhat)

        with threadpool_limits(limits=1, user_api="blas"):
            walls, cpus = [], []
            for _ in range(3):
                t0, c0 = time.perf_counter(), time.process_time()
                kernel()
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
        ta, _ = _best(lambda: R.reconcile(syn.Y_hat_df, syn.hier, {"m": method},  # noqa: B023
                                          Y_df=syn.Y_df, intervals=None), 1)  # fmt: skip
        lines.append(f"| {key} | {size:,} | {syn.hier.n_nodes:,} | {np.median(walls):.2f} | "
                     f"{np.median(cpus):.2f} | {ta:.1f} | {ANCHOR} (249,808 series) |")  # fmt: skip
        log(lines[-1])
    return "\n".join(lines)
