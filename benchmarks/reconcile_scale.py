"""Reconciliation at scale: htsforecast vs hierarchicalforecast on synthetic M5-like hierarchies.

Run (from the repository root)::

    /work/venv/bin/python benchmarks/reconcile_scale.py            # 1,000 / 5,000 / 30,000 bottom
    /work/venv/bin/python benchmarks/reconcile_scale.py --quick    # 1,000 bottom only, ~1 min
    /work/venv/bin/python benchmarks/reconcile_scale.py --sizes 1000,5000 --out table.md
    /work/venv/bin/python benchmarks/reconcile_scale.py --intervals   # + Gaussian intervals, vs peer
    /work/venv/bin/python benchmarks/reconcile_scale.py --intervals --kinds random --methods mint_shrink
    /work/venv/bin/python benchmarks/reconcile_scale.py --anchor      # points at 250,000 bottom

For each size it builds the grouped hierarchy ``(state / store) * (cat / item)`` (and, for
top-down, the strict tree ``state / store / item`` over the same bottom series) with
:mod:`_synthetic`, then times every method through each library's public API on the same
``Y_hat_df`` / ``Y_df`` frames:

- htsforecast: ``reconcile(Y_hat_df, hier, {name: method}, Y_df=Y_df, intervals=None)``; also the
  array kernel alone (``method.fit(problem, yhat)`` then ``S @ P yhat``, no frames);
- hierarchicalforecast: ``HierarchicalReconciliation([cls]).reconcile(Y_hat_df=..., Y_df=...,
  S_df=..., tags=...)`` with its dense class and, where it has one, its ``*Sparse`` class. ``S_df``
  is given as its sparse ``SMatrix`` (its own large-scale input; a dense frame would be 10 GB at
  30,000 bottom series).

Every call runs in a fresh subprocess (peer calls under a timeout). Memory is the peak resident
set size of that process during the call minus its resident size just before it (Linux
``VmHWM`` reset through ``/proc/self/clear_refs``), the same measure for both libraries; for
htsforecast the tracemalloc peak of one extra call is given too. Numbers are compared as
``max |a - b| / level`` over every node and horizon, ``level`` = mean |y| of that node in-sample,
against the peer and against an independent reference (:mod:`_synthetic`: the primal normal
equations solved directly, closed-form top-down).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _synthetic import (  # noqa: E402
    MODEL,
    level_of_series,
    make_synthetic,
    reference_gls,
    reference_top_down,
    reference_weights,
)

# method key -> (structure, htsforecast constructor, peer dense class, peer sparse class)
METHODS = {
    "bottom_up": ("grouped", "BottomUp()", "BottomUp()", "BottomUpSparse()"),
    "td_average_proportions": ("grouped", "TopDown('average_proportions')", None, None),
    "td_forecast_proportions": ("grouped", "TopDown('forecast_proportions')", None, None),
    "td_average_proportions (tree)": (
        "nested",
        "TopDown('average_proportions')",
        "TopDown(method='average_proportions')",
        "TopDownSparse(method='average_proportions')",
    ),
    "td_forecast_proportions (tree)": (
        "nested",
        "TopDown('forecast_proportions')",
        "TopDown(method='forecast_proportions')",
        "TopDownSparse(method='forecast_proportions')",
    ),
}
for _m in ("ols", "wls_struct", "wls_var"):
    METHODS[_m] = (
        "grouped",
        f"MinTrace('{_m}')",
        f"MinTrace(method='{_m}')",
        f"MinTraceSparse(method='{_m}')",
    )
for _m in ("mint_shrink", "mint_cov"):
    METHODS[_m] = ("grouped", f"MinTrace('{_m}')", f"MinTrace(method='{_m}')", None)

DENSE_LIMIT = 10_000  # bottom series above which the peer's dense classes are not run
SKIP_NOTE = "skipped: dense S / W at this size need ≥ 10 GB (peer's dense BottomUp OOMs at 20k)"


# ============================================================================ worker (subprocess)
def _status(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", text).group(1)) * 1024


def _measure(fn, repeats: int, budget: float):
    """Median-able wall times and peak-RSS deltas of ``fn()``; stops early past ``budget`` s."""
    times, mems, out = [], [], None
    for _ in range(repeats):
        out = None
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM)
        rss0 = _status("VmRSS")
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        mems.append(_status("VmHWM") - rss0)
        if sum(times) > budget:
            break
    return out, times, mems


def _tracemalloc_peak(fn) -> int:
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def _wide(frame, col: str, node_ids: list[str]) -> np.ndarray:
    return frame.pivot(index="unique_id", columns="ds", values=col).loc[node_ids].to_numpy()


def _ours(job: dict, syn) -> dict:
    import importlib

    from htsforecast.reconciliation._arrays import problem_of as _problem
    from htsforecast.reconciliation._methods import Problem

    # (``import htsforecast.reconciliation as R`` would give the function: the package re-exports it)
    R = importlib.import_module("htsforecast.reconciliation")
    method = eval(job["ctor"], {**vars(R)})
    hier, node_ids = syn.hier, syn.hier.node_ids

    def api():
        return R.reconcile(syn.Y_hat_df, hier, {"m": method}, Y_df=syn.Y_df, intervals=None)

    p0 = _problem(hier)
    problem = Problem(p0.S, p0.levels, p0.default_path, syn.y, syn.y - syn.fitted)

    def kernel():
        return hier.S @ method.fit(problem, syn.yhat).bottom(syn.yhat)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec, times, mems = _measure(api, job["repeats"], job["budget"])
        with threadpool_limits(limits=1, user_api="blas"):
            _, times1, _ = _measure(api, job["repeats"], job["budget"])
            _, ktimes, _ = _measure(kernel, job["repeats"], job["budget"])
        peak = _tracemalloc_peak(api)
    fc = rec.forecasts
    out = _wide(fc[fc["method"] == "m"], "yhat", node_ids)
    note = "; ".join(sorted({str(w.message).split(".")[0][:90] for w in caught}))
    return {
        "times": times,
        "times1": times1,
        "mems": mems,
        "kernel_times": ktimes,
        "tracemalloc": peak,
        "out": out,
        "note": note,
    }


def _peer(job: dict, syn) -> dict:
    import hierarchicalforecast.methods as HM
    from hierarchicalforecast.core import HierarchicalReconciliation
    from hierarchicalforecast.utils import SMatrix

    hier = syn.hier
    S = SMatrix(hier.S, np.asarray(hier.node_ids), np.asarray(hier.bottom_ids))
    tags = {k: np.asarray(v) for k, v in hier.levels.items()}
    cls = eval(job["ctor"], vars(HM))

    def call():
        hrec = HierarchicalReconciliation([cls])
        return hrec.reconcile(Y_hat_df=syn.Y_hat_df, Y_df=syn.Y_df, S_df=S, tags=tags)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec, times, mems = _measure(call, job["repeats"], job["budget"])
        times1 = []
        if job.get("one_thread"):
            with threadpool_limits(limits=1, user_api="blas"):
                _, times1, _ = _measure(call, job["repeats"], job["budget"])
    col = [c for c in rec.columns if c not in ("unique_id", "ds", MODEL)][0]
    out = _wide(rec, col, hier.node_ids)
    return {"times": times, "times1": times1, "mems": mems, "out": out, "note": ""}


def worker(job_path: str) -> None:
    """Run one job described by a JSON file; write the result next to it."""
    job = json.loads(Path(job_path).read_text())
    with open(job["data"], "rb") as fh:
        syn = pickle.load(fh)
    res = (_ours if job["lib"] == "ours" else _peer)(job, syn)
    np.save(job["result"] + ".npy", res.pop("out"))
    Path(job["result"] + ".json").write_text(json.dumps(res))


# ============================================================================ driver
def _run_job(job: dict, workdir: Path, timeout: float) -> dict:
    name = f"job{abs(hash(json.dumps(job, sort_keys=True))) % 10**10}"
    job = {**job, "result": str(workdir / name)}
    path = workdir / f"{name}.in.json"
    path.write_text(json.dumps(job))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout (> {timeout:.0f} s)"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["killed"])[-1]
        if proc.returncode < 0:
            last = f"killed (signal {-proc.returncode}, out of memory?)"
        return {"status": "error: " + last[:120]}
    res = json.loads(Path(job["result"] + ".json").read_text())
    res["out"] = np.load(job["result"] + ".npy")
    res["status"] = "ok"
    return res


def _reference(syn, key: str) -> tuple[np.ndarray | None, str]:
    from htsforecast.reconciliation._arrays import problem_of as _problem

    hier = syn.hier
    if key == "bottom_up":
        return np.asarray(hier.S @ syn.yhat[-hier.n_bottom :]), "S ŷ_bottom"
    if key.startswith("td_"):
        method = key.split(" ")[0][3:]
        return reference_top_down(syn, method, _problem(hier).default_path), "closed form"
    method = "mint_shrink" if key == "mint_cov" else key
    d, U, _ = reference_weights(method, hier.S, syn.y - syn.fitted)
    b, res = reference_gls(hier.S, d, U, syn.yhat)
    note = f"primal direct solve (residual {res:.0e})"
    if key == "mint_cov":
        note = "mint_shrink's (sample covariance singular: rank ≤ T-1 < aggregates)"
    return np.asarray(hier.S @ b), note


def _rel_diff(a: np.ndarray | None, b: np.ndarray | None, level: np.ndarray) -> float | None:
    if a is None or b is None:
        return None
    return float(np.max(np.abs(a - b) / level[:, None]))


def _median(res: dict, key: str = "times") -> float | None:
    ok = res.get("status") == "ok" and len(res.get(key) or []) > 0
    return float(np.median(res[key])) if ok else None


def _bench_size(size: int, args, workdir: Path, log) -> list[dict]:
    rows, data = [], {}
    keys = [k for k in METHODS if args.methods is None or k.split(" ")[0] in args.methods]
    for structure in sorted({METHODS[k][0] for k in keys}):
        t0 = time.perf_counter()
        syn = make_synthetic(size, structure)
        path = workdir / f"data_{size}_{structure}.pkl"
        with open(path, "wb") as fh:
            pickle.dump(syn, fh, protocol=pickle.HIGHEST_PROTOCOL)
        data[structure] = (syn, str(path))
        log(f"[{size}] {structure}: {syn.hier.n_nodes} nodes, data {time.perf_counter() - t0:.1f}s")
    reps = args.repeats or (1 if args.quick else (5 if size <= 1000 else 3))
    peer_reps = 1 if size > 1000 else min(reps, 3)
    for key in keys:
        structure, ours_ctor, dense, sparse = METHODS[key]
        syn, path = data[structure]
        base = {"data": path, "budget": args.budget}
        row = {"size": size, "method": key, "n_nodes": syn.hier.n_nodes}
        row["ours"] = _run_job(
            {**base, "lib": "ours", "ctor": ours_ctor, "repeats": reps}, workdir, 4 * args.timeout
        )
        for variant, ctor in (("dense", dense), ("sparse", sparse)):
            if ctor is None or args.no_peer:
                row[variant] = {"status": "—" if ctor is None else "not run"}
            elif variant == "dense" and size > DENSE_LIMIT:
                row[variant] = {"status": SKIP_NOTE}
            else:
                job = {**base, "lib": "peer", "ctor": ctor, "repeats": peer_reps}
                job["one_thread"] = variant == "sparse"
                row[variant] = _run_job(job, workdir, args.timeout)
        ref, row["ref_note"] = _reference(syn, key)
        level = level_of_series(syn.y)
        ours_out = row["ours"].get("out")
        for variant in ("dense", "sparse"):
            row[f"diff_{variant}"] = _rel_diff(ours_out, row[variant].get("out"), level)
            row[f"{variant}_vs_ref"] = _rel_diff(row[variant].get("out"), ref, level)
        row["diff_ref"] = _rel_diff(ours_out, ref, level)
        log(_summary(row))
        rows.append(row)
    return rows


def _summary(row: dict) -> str:
    parts = [f"[{row['size']}] {row['method']}:"]
    for v in ("ours", "dense", "sparse"):
        t = _median(row[v])
        parts.append(f"{v}={t:.3f}s" if t is not None else f"{v}={row[v]['status'][:40]}")
    parts.append(f"diff_ref={row['diff_ref']}")
    return " ".join(parts)


# ============================================================================ report
def _best(res: dict) -> tuple[float | None, bool]:
    """(best median seconds over the thread settings measured, True if with 1 BLAS thread)."""
    t, t1 = _median(res), _median(res, "times1")
    if t1 is not None and (t is None or t1 < t):
        return t1, True
    return t, False


def _fmt_s(t: float | None) -> str:
    return "" if t is None else (f"{t:.3f}" if t < 10 else f"{t:.1f}")


def _fmt_t(res: dict) -> str:
    """Best median seconds, ``¹`` when with one BLAS thread; or the status of a failed run."""
    t, one = _best(res)
    if t is None:
        st = res["status"]
        return "skipped²" if st.startswith("skipped") else st
    return _fmt_s(t) + ("¹" if one else "")


def _fmt_mb(res: dict, key: str = "mems") -> str:
    if res.get("status") != "ok":
        return ""
    val = max(res[key]) if isinstance(res[key], list) else res[key]
    return f"{val / 2**20:,.0f}"


def _fmt_e(x: float | None) -> str:
    return "" if x is None else f"{x:.0e}"


def _peer_best(row: dict) -> tuple[float | None, str]:
    cands = [(_best(row[v])[0], v) for v in ("dense", "sparse") if _best(row[v])[0] is not None]
    return min(cands) if cands else (None, "")


def _target(row: dict) -> str:
    """Verdict against issue 4's targets (best thread setting of each side)."""
    ours, _ = _best(row["ours"])
    if ours is None:
        return "FAILED"
    size, key = row["size"], row["method"]
    wrong = [v for v in ("dense", "sparse") if (row[f"{v}_vs_ref"] or 0) > 1e-6]
    tail = f"; peer {'/'.join(wrong)} numbers wrong" if wrong else ""
    if key == "mint_shrink" and size == 30000:
        peak = max(max(row["ours"]["mems"]), row["ours"]["tracemalloc"]) / 2**30
        return f"{'met' if ours < 10 and peak < 2 else 'MISSED'} (< 10 s, < 2 GB)"
    if key in ("mint_shrink", "mint_cov") and size == 5000:
        dense, default = _median(row["dense"]), _median(row["ours"])
        if dense is None:
            return f"peer dense: {row['dense']['status'][:30]}"
        equal = row["diff_dense"] is not None and row["diff_dense"] < 1e-8
        verdict = "met" if dense / ours >= 50 and equal else "MISSED"
        if "dense" in wrong:
            verdict = "n/a³"
        return (
            f"{verdict} (≥ 50×: {dense / ours:.0f}×; {dense / default:.0f}× default threads){tail}"
        )
    best, variant = _peer_best(row)
    if best is None:
        return "no peer run"
    return f"{'met' if ours <= best else 'MISSED'} (≤ peer {variant}){tail}"


HEADER = (
    "| bottom | nodes | method | htsf s | htsf s, 1 BLAS thread | htsf kernel s¹ "
    "| htsf MB (RSS Δ / tracemalloc) | peer dense s | MB | peer sparse s | MB "
    "| best peer / best htsf | htsf vs ref | htsf vs peer dense | htsf vs peer sparse "
    "| peer dense vs ref | peer sparse vs ref | target |"
)


def _cells(row: dict) -> list[str]:
    ours = row["ours"]
    best, variant = _peer_best(row)
    t, _ = _best(ours)
    ok = ours.get("status") == "ok"
    return [
        f"{row['size']:,}",
        f"{row['n_nodes']:,}",
        row["method"],
        _fmt_s(_median(ours)) if ok else ours["status"],
        _fmt_s(_median(ours, "times1")),
        _fmt_s(_median(ours, "kernel_times")),
        f"{_fmt_mb(ours)} / {_fmt_mb(ours, 'tracemalloc')}" if ok else "",
        _fmt_t(row["dense"]),
        _fmt_mb(row["dense"]),
        _fmt_t(row["sparse"]),
        _fmt_mb(row["sparse"]),
        f"{best / t:,.1f}× ({variant})" if best and t else "",
        _fmt_e(row["diff_ref"]),
        _fmt_e(row["diff_dense"]),
        _fmt_e(row["diff_sparse"]),
        _fmt_e(row["dense_vs_ref"]),
        _fmt_e(row["sparse_vs_ref"]),
        _target(row),
    ]


def render(rows: list[dict]) -> str:
    """The markdown table."""
    lines = [HEADER, "|" + "|".join(["---"] * (HEADER.count("|") - 1)) + "|"]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


FOOTNOTES = """\
Seconds are medians over the repeats (fewer at large sizes); ``¹`` = with BLAS limited to one
thread (threadpoolctl), the better setting for that variant. Differences are
max |a − b| / (mean |y| of the node) over all nodes and horizons; "ref" is the independent
reference (BottomUp: S ŷ_bottom; top-down: closed form; MinTrace: the primal normal equations
solved directly, see ``_synthetic.py``). MB: peak RSS of the process during the call minus its
RSS before it (and, for htsforecast, the tracemalloc peak of one call).
² hierarchicalforecast's dense classes are not run above 10,000 bottom series (dense S and W of
42,056 nodes: 10–14 GB each; its dense BottomUp was measured to run out of 16 GB at 20,000).
It gets S as its sparse ``SMatrix`` everywhere. It refuses top-down on grouped structures, so its
top-down runs are on the strict tree ``state / store / item`` over the same bottom series.
³ ``mint_cov``: with T = 120 residual periods the sample covariance has rank ≤ 119, far below
the number of aggregate constraints, so C W C' is singular: hierarchicalforecast solves the
singular system anyway (numbers off by up to ~80× a series' level), htsforecast warns and falls
back to ``mint_shrink`` (so it is compared with mint_shrink's reference).
Known peer differences: ``MinTraceSparse`` stops bicgstab at a 1e-5 residual and ignores its exit
status (ols/wls_struct errors above), and its ``wls_var`` uses the centred variance (ddof = 1)
where the dense class and htsforecast use the uncentred mean square (~1e-2 difference)."""


def _notes(rows: list[dict]) -> str:
    """Warnings raised by htsforecast and errors of the peer, once each."""
    seen, out = set(), []
    for row in rows:
        text = row["ours"].get("note", "")
        if text and (row["method"], text[:40]) not in seen:
            seen.add((row["method"], text[:40]))
            out.append(f"- htsforecast {row['method']} ({row['size']:,}) warned: {text}")
        for v in ("dense", "sparse"):
            st = row[v].get("status", "")
            if st.startswith(("error", "timeout")):
                out.append(f"- peer {v} {row['method']} ({row['size']:,}): {st}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,5000,30000", help="bottom series, comma separated")
    ap.add_argument("--quick", action="store_true", help="1,000 bottom series, 1 repeat")
    ap.add_argument("--methods", default=None, help="comma separated subset of method keys")
    ap.add_argument("--repeats", type=int, default=None, help="repeats (default 5/3 by size)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per peer call")
    ap.add_argument("--budget", type=float, default=20.0, help="stop repeating after this many s")
    ap.add_argument("--no-peer", action="store_true", help="htsforecast only")
    ap.add_argument("--out", default=None, help="also write the markdown here")
    ap.add_argument("--intervals", action="store_true", help="interval rows instead (see below)")
    ap.add_argument("--anchor", action="store_true", help="the 250,000-series row instead")
    ap.add_argument("--kinds", default="prop,general", help="interval rows: base σ kinds")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    if args.intervals or args.anchor:
        return _interval_main(args)
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if args.quick:
        args.timeout = min(args.timeout, 60.0)
    args.methods = None if args.methods is None else set(args.methods.split(","))
    start, rows = time.perf_counter(), []

    def log(msg: str) -> None:
        print(f"{time.perf_counter() - start:7.1f}s {msg}", file=sys.stderr, flush=True)

    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="reconcile_scale_") as tmp:
        for size in sizes:
            rows += _bench_size(size, args, Path(tmp), log)
    parts = [
        render(rows),
        FOOTNOTES,
        _notes(rows),
        f"Total {time.perf_counter() - start:.0f} s; load average at start "
        f"{load0[0]:.1f}, at end {os.getloadavg()[0]:.1f} (2 cores; other jobs share them).",
    ]
    text = "\n\n".join(p for p in parts if p)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return None


def _interval_main(args) -> None:
    """``--intervals``: points vs points + Gaussian intervals per method and size, with the
    peer's normality intervals where they fit (:mod:`_interval_rows`); ``--anchor``: points at
    250,000 bottom series against the published WLS figure."""
    from _interval_rows import anchor_rows, interval_rows, render_intervals

    load0 = os.getloadavg()
    parts = []
    if args.intervals:
        rows = []
        kinds = tuple(args.kinds.split(","))
        methods = None if args.methods is None else set(args.methods.split(","))
        reps = args.repeats or 3
        for size in [1000] if args.quick else [int(s) for s in args.sizes.split(",")]:
            with threadpool_limits(limits=1, user_api="blas"):  # both sides alike, stable
                rows += interval_rows(size, kinds, repeats=reps, methods=methods)
        parts.append(render_intervals(rows))
        parts.append(
            f"Medians of {reps} alternating runs (points, intervals, points, ...) in one process, "
            "BLAS limited to one thread for both; ratio = intervals / points."
        )
    if args.anchor:
        parts.append(anchor_rows())
    parts.append(f"load average at start {load0[0]:.1f}, at end {os.getloadavg()[0]:.1f}")
    text = "\n\n".join(parts)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
