"""The whole ``htsforecast run`` job at M5 scale: wall time, peak RSS and where the time goes.

Run (from the repository root)::

    /work/venv/bin/python benchmarks/job_scale.py                      # ~5k, 14k, 42,840 nodes
    /work/venv/bin/python benchmarks/job_scale.py --items 346          # one size (4,998 nodes)

Each size writes an M5-shaped daily Parquet panel (``state / store`` × ``cat / dept / item``:
3 states, 10 stores, 3 categories, 7 departments, ``items`` items sold in every store; 365 days
of intermittent, seasonal counts) and runs, in a fresh subprocess::

    htsforecast run --data panel.parquet --formula "(state / store) * (cat / dept / item)"
        --freq D --models snaive --h 28 --level 80,95 --cv-windows 1 --out <tmp>

with every default method (the registry's defaults). ``items = 3049`` is the M5 shape: 30,490
bottom series, 42,840 nodes. The job runs in-process under ``cProfile``; stages are read from
the cumulative time of the functions that do them (nested stages subtracted):

- load/validate: ``job._load`` (reading the file),
- aggregate: ``Hierarchy.aggregate`` (validates the frame once and builds the panel),
- base fit: ``forecast_panel`` (CV window and final fit),
- reconcile points: every method's ``fit`` and ``Fitted.bottom`` (CV window and final fit),
- reconcile intervals: ``_interval_bounds`` (Gaussian variances ``diag(S P W_h P' S')``),
- reconcile other: the rest of ``reconcile_arrays`` and the tidy frames (diagnostics, framing),
- calibration: ``job._calibrate`` (interval width factors from the CV window, applied),
- evaluation: scoring the CV window, the per-level tables, selection,
- writing: ``job._write``, ``_plots``, ``_stamp`` (output files, plots).

The profiler adds some overhead to Python-heavy stages; the wall time without it is printed too
(``--no-plain`` skips that second run). Peak RSS is the worker's ``VmHWM``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
FORMULA = "(state / store) * (cat / dept / item)"
STORES = ["CA_1", "CA_2", "CA_3", "CA_4", "TX_1", "TX_2", "TX_3", "WI_1", "WI_2", "WI_3"]
DEPTS = {"FOODS": 3, "HOBBIES": 2, "HOUSEHOLD": 2}  # 7 departments, as M5
SIZES = (346, 1000, 3049)  # 4,998 / 14,154 / 42,840 nodes
STAGES = {  # stage -> (file suffix, function name) whose cumulative time counts
    "load/validate": [("job.py", "_load")],
    "aggregate": [("hierarchy.py", "aggregate")],  # validates the frame once (as_panel=True)
    "base fit": [("_forecast.py", "forecast_panel")],
    "reconcile points": [("_methods.py", "fit"), ("_methods.py", "bottom")],
    "reconcile intervals": [("_arrays.py", "_interval_bounds")],
    "reconcile other": [("_arrays.py", "reconcile_arrays"), ("_api.py", "_tidy")],
    "calibration": [("job.py", "_calibrate")],  # interval factors from the CV window, applied
    "evaluation": [
        ("_cv.py", "_score"),
        ("_cv.py", "_assemble"),
        ("_cv.py", "_horizon_scores"),
        ("job.py", "_select"),
    ],
    "writing": [("job.py", "_write"), ("job.py", "_plots"), ("job.py", "_stamp")],
}


def n_nodes(items: int) -> int:
    """Nodes of the M5-shaped hierarchy with ``items`` items (154 above the item levels)."""
    return 1 + 3 + 10 + 3 + 7 + 9 + 21 + 30 + 70 + items * (1 + 3 + 10)


def make_panel(items: int, days: int = 365, seed: int = 0) -> pd.DataFrame:
    """Bottom-level daily counts (store × item): Poisson around a weekly-seasonal level."""
    rng = np.random.default_rng(seed)
    all_depts = [f"{cat}_{k + 1}" for cat, n in DEPTS.items() for k in range(n)]
    depts = np.array(all_depts)[np.arange(items) % len(all_depts)]
    cats = np.array([d.rsplit("_", 1)[0] for d in depts])
    item_ids = np.char.add(np.char.add(depts, "_"), np.arange(items).astype(str))
    m = items * len(STORES)
    level = np.exp(rng.normal(0.0, 1.2, size=(m, 1)))
    week = 1.0 + 0.3 * np.sin(2 * np.pi * (np.arange(days) + rng.integers(0, 7, (m, 1))) / 7)
    y = rng.poisson(level * week).astype(np.float32)
    store = np.repeat(STORES, items)
    frame = {
        "state": np.repeat([s[:2] for s in STORES], items),
        "store": store,
        "cat": np.tile(cats, len(STORES)),
        "dept": np.tile(depts, len(STORES)),
        "item": np.tile(item_ids, len(STORES)),
    }
    dates = pd.date_range("2015-01-01", periods=days, freq="D")
    out = pd.DataFrame({k: pd.Categorical(np.repeat(v, days)) for k, v in frame.items()})
    out["ds"] = np.tile(dates.to_numpy(), m)
    out["y"] = y.ravel()
    return out


def _argv(data: Path, out: Path) -> list[str]:
    return [
        "run", "--data", str(data), "--formula", FORMULA, "--freq", "D", "--models", "snaive",
        "--h", "28", "--level", "80,95", "--cv-windows", "1", "--out", str(out),
    ]  # fmt: skip


def _peak_rss() -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) * 1024


def _own_lines() -> set[int]:
    """First lines of the method-level functions counted as points in ``_methods.py`` (not the
    closures of the same name they call, nor ``TopDown.fit``, which delegates to MiddleOut)."""
    from htsforecast.reconciliation import _methods as M

    funcs = [M.BottomUp.fit, M.MiddleOut.fit, M.MinTrace.fit, M.Fitted.bottom]
    return {f.__code__.co_firstlineno for f in funcs}


def _stage_times(stats: pstats.Stats) -> dict[str, float]:
    cum: dict[str, float] = {}
    own = _own_lines()
    for (path, line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        if path.endswith("_methods.py") and line not in own:
            continue
        for stage, keys in STAGES.items():
            if any(path.endswith(suffix) and name == fn for suffix, fn in keys):
                cum[stage] = cum.get(stage, 0.0) + ct
    inner = cum.get("reconcile points", 0.0) + cum.get("reconcile intervals", 0.0)
    cum["reconcile other"] = cum.get("reconcile other", 0.0) - inner
    return cum


def worker(data: str, out: str, profile: bool) -> None:
    """Run the CLI in this process; print one JSON line with wall, RSS and stage times."""
    from htsforecast.cli import main

    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    rc = main(_argv(Path(data), Path(out)))
    if prof:
        prof.disable()
    wall = time.perf_counter() - t0
    stages = _stage_times(pstats.Stats(prof)) if prof else {}
    print(json.dumps({"rc": rc, "wall": wall, "rss": _peak_rss(), "stages": stages}))


def _run_worker(data: Path, out: Path, profile: bool) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(data), str(out)]
    cmd += ["--profile"] if profile else []
    env = {**os.environ, "MPLBACKEND": "Agg", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(items: int, plain: bool, workdir: Path) -> dict:
    data = workdir / f"m5_{items}.parquet"
    t0 = time.perf_counter()
    make_panel(items).to_parquet(data)
    print(f"[{n_nodes(items)} nodes] panel written in {time.perf_counter() - t0:.1f} s", flush=True)
    res = _run_worker(data, workdir / f"out_{items}_prof", profile=True)
    if plain and "error" not in res:
        res["plain"] = _run_worker(data, workdir / f"out_{items}", profile=False)
    res["items"], res["nodes"] = items, n_nodes(items)
    print(json.dumps(res), flush=True)
    return res


def render(rows: list[dict]) -> str:
    head = ["nodes", "bottom", "wall (s)", "wall, profiled (s)", "peak RSS (GB)", *STAGES,
            "intervals / points (profiled s)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['nodes']:,} | {10 * r['items']:,} | error: {r['error']} |")
            continue
        plain = r.get("plain", {})
        wall = f"{plain['wall']:.0f}" if "wall" in plain else "—"
        rss = max(r["rss"], plain.get("rss", 0)) / 1e9
        shares = [f"{100 * r['stages'].get(s, 0.0) / r['wall']:.0f} %" for s in STAGES]
        cells = [f"{r['nodes']:,}", f"{10 * r['items']:,}", wall, f"{r['wall']:.0f}"]
        ivs, pts = r["stages"].get("reconcile intervals", 0.0), r["stages"]["reconcile points"]
        ratio = f"{ivs / pts:.2f}× ({ivs:.1f} / {pts:.1f} s)"
        lines.append("| " + " | ".join([*cells, f"{rss:.2f}", *shares, ratio]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", help="comma-separated item counts (default 346,1000,3049)")
    p.add_argument("--no-plain", action="store_true", help="skip the unprofiled run")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(*args.worker, profile=args.profile)
        return
    sizes = [int(s) for s in args.items.split(",")] if args.items else list(SIZES)
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench(items, not args.no_plain, Path(tmp)) for items in sizes]
    print()
    print(render(rows))
    print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
