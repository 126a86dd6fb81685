"""Command-line interface: ``htsforecast <command> ...``.

Argument parsing only; every command calls the public API. Each subcommand is a pair of
functions, ``_add_<name>_parser(subparsers)`` (registers its options and sets ``func``) and
``_cmd_<name>(args) -> int`` (does the work); add a command by writing that pair and listing the
first in :data:`_SUBCOMMANDS`.

Errors raised on purpose (:class:`~htsforecast.errors.HTSError`) and file errors (``OSError``)
end the program with one line ``htsforecast: error: <message>`` on stderr and exit code 2, with
API option spellings in the message rewritten as the command-line options (:func:`cli_hints`).
Exit codes: 0 success, 1 internal error, 2 bad input or usage, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence

from htsforecast import __version__
from htsforecast.errors import HTSError

__all__ = ["build_parser", "main"]

PROG = "htsforecast"


def _add_datasets_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "datasets",
        help="list the bundled data sets with their shapes",
        description="List the bundled data sets: frequency, hierarchy formula, number of "
        "bottom series and of all nodes, periods, rows of bottom-level data.",
    )
    p.add_argument(
        "--format",
        choices=("table", "csv"),
        default="table",
        help="output format (default: table)",
    )
    p.set_defaults(func=_cmd_datasets)


def _cmd_datasets(args: argparse.Namespace) -> int:
    from htsforecast.datasets import list_datasets

    table = list_datasets()
    if args.format == "csv":
        sys.stdout.write(table.to_csv(index=False))
    else:
        sys.stdout.write(table.to_string(index=False) + "\n")
    return 0


def _add_run_parser(subparsers: argparse._SubParsersAction) -> None:
    from htsforecast._config import SETTINGS
    from htsforecast.job import METHODS, MODELS

    p = subparsers.add_parser(
        "run",
        help="the whole job: aggregate, forecast, reconcile, evaluate, write files",
        description="Aggregate the data to every node, fit base forecasts, reconcile them with "
        "every method, evaluate by rolling-origin cross-validation, pick the best coherent "
        "model x method and write forecasts, best_forecasts, accuracy, selection.json, run.json "
        "and plots. With no arguments it runs on the bundled radon panel.",
    )

    def opt(name: str, *flags: str, **kw: object) -> None:
        kw.setdefault("help", SETTINGS[name].help)
        p.add_argument(*(flags or (f"--{name.replace('_', '-')}",)), dest=name, **kw)

    opt("data", help="bottom-level data, CSV or Parquet (default: bundled data set)")
    opt("dataset", help="bundled data set used without --data (default radon_panel)")
    opt("formula")
    opt("time_col", help="date column (default ds)")
    opt("target_col", help="value column (default y)")
    opt("freq", help="pandas frequency alias: MS, QS, W-SUN, D ... (never guessed)")
    opt("date_format", help="strftime format of the dates, or 'mixed' (default: inferred)")
    opt("encoding", help="text encoding of a CSV file (default utf-8)")
    opt("fill", choices=("zero",), help="gap policy: 'zero' when a missing row means zero")
    opt("h", type=int, help="forecast horizon (default: one season)")
    opt("models", help=f"comma-separated, from: {', '.join(MODELS)} (default ets,pooled_median)")
    opt("methods", help=f"comma-separated, from: {', '.join(METHODS)}; or all")
    opt("level", help="interval levels, e.g. 80,95")
    opt("intervals", choices=("gaussian", "bootstrap", "none"), help="interval kind (gaussian)")
    opt("calibrate", action=argparse.BooleanOptionalAction, default=None,
        help="rescale the intervals per horizon step by the factor with the least pinball loss "
        "(~CRPS) on the CV windows (default on)")  # fmt: skip
    opt("cv_windows", type=int, help="CV origins (default 1 when the history allows; 0: none)")
    opt("metric", help="selection metric: mase, rmse, mae, coverage_80 ... (default mase)")
    opt("nonnegative", action=argparse.BooleanOptionalAction, default=None,
        help="non-negative forecasts and intervals, for every method (default: on for counts)")  # fmt: skip
    opt("allow_incoherent", action="store_true", default=None,
        help="let the unreconciled 'base' forecasts be chosen")  # fmt: skip
    opt("allow_fallback", action="store_true", default=None,
        help="accept a model even when most of its nodes fell back")  # fmt: skip
    opt("n_jobs", type=int, help="parallel jobs (default -1: all cores)")
    opt("engine", help="dask (local cluster of --n-jobs workers), dask://host:port, or spark")
    opt("out", help="output folder (default ./htsforecast-out/)")
    opt("format", choices=("csv", "parquet"), help="output files (default: like --data)")
    opt("plot_nodes", help="comma-separated node ids to plot (default: largest per level)")
    opt("save_model", help="also save the fitted run in this folder, for `htsforecast predict`")
    opt("plots", "--no-plots", action="store_false", default=None, help="write no PNG plots")
    opt("temporal", help="temporal hierarchy: 'auto' (every divisor of the season) or factors "
        "such as 12,4,1; forecasts, reconciles (temporal te_*, cross-temporal ct_*) and scores "
        "every temporal level on a holdout of h periods")  # fmt: skip
    opt("exog")
    opt("future")
    opt("holidays")
    p.add_argument("--config", help="TOML file with the same settings (CLI options win)")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from htsforecast.job import RunConfig, run

    options = {k: v for k, v in vars(args).items() if k not in ("func", "command", "config")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            run(RunConfig.from_sources(args.config, options))
        finally:
            for line in summarize_warnings(caught):
                print(f"notice: {line}", file=sys.stderr)
    return 0


def summarize_warnings(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """One line per distinct warning (numbers ignored when comparing), with a repeat count."""
    seen: dict[str, tuple[str, int]] = {}
    for w in caught:
        if issubclass(w.category, DeprecationWarning | PendingDeprecationWarning | FutureWarning):
            continue
        text = " ".join(str(w.message).split())
        key = re.sub(r"[0-9.e+-]+", "#", text)
        first, count = seen.get(key, (text, 0))
        seen[key] = (first, count + 1)
    return [text if n == 1 else f"{text} (and {n - 1} similar)" for text, n in seen.values()]


def _add_predict_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="forecasts of a run saved with --save-model, without refitting",
        description="Load a run saved with `htsforecast run --save-model DIR` and write its "
        "reconciled forecasts for the first --h steps (at most the run's h): forecasts, "
        "best_forecasts (the run's chosen pipeline) and run.json.",
    )
    p.add_argument("--model", required=True, help="folder written by run --save-model")
    p.add_argument("--h", type=int, help="forecast horizon (default: the saved run's h)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv", help="output files")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from htsforecast.job import predict

    if args.h is not None and args.h < 1:
        raise HTSError(f"--h must be a positive number of periods, got {args.h}.")
    predict(args.model, args.out, args.h, args.format)
    return 0


#: Registration functions of the subcommands, in the order ``--help`` shows them.
_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_run_parser,
    _add_predict_parser,
    _add_datasets_parser,
]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Hierarchical and grouped time-series forecasting.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Returns
    -------
    int
        0 on success; 2 on a usage error or bad input (an
        :class:`~htsforecast.errors.HTSError`, an ``OSError``, input pandas cannot read); 1 on an
        unexpected internal error; 130 on Ctrl-C. Errors are one line on stderr, never a
        traceback (set ``HTSFORECAST_DEBUG=1`` to see one).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage error, --help or --version: argparse already printed
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        _stop_workers()
        print(f"{PROG}: interrupted, nothing written", file=sys.stderr)
        return 130
    except (HTSError, OSError) as exc:
        return _fail(str(exc))
    except (ValueError, TypeError) as exc:
        # input pandas/numpy could not read (unparseable dates, malformed CSV): still one line
        return _fail(f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug: one line, exit 1, traceback only on request
        if os.environ.get("HTSFORECAST_DEBUG"):
            raise
        print(
            f"{PROG}: internal error ({type(exc).__name__}: {' '.join(str(exc).split())}); "
            "please report it, with HTSFORECAST_DEBUG=1 for the traceback",
            file=sys.stderr,
        )
        return 1


#: API spellings in error messages and their command-line equivalents.
_CLI_HINTS: list[tuple[str, str]] = [
    (r"Hierarchy\.aggregate\(\.\.\., fill='zero'\)", "--fill zero"),
    (r"fill='zero'", "--fill zero"),
    (r"intervals='bootstrap'", "--intervals bootstrap"),
    (r"intervals=None", "--intervals none"),
    (r"cross_validate\(metrics=\.\.\.\)", "--metric"),
    (r"format='mixed'", "--date-format mixed"),
    (r"pass level=\[[0-9, ]*\]", "pass --level 80,95"),
    (r"forecast with level=\[\.\.\.\]", "use --level 80,95"),
    (r"\bn_windows\b", "--cv-windows"),
    (r"\bfreq='([^']*)'", r"--freq \1"),
]


def cli_hints(text: str) -> str:
    """Rewrite API option spellings in ``text`` as the command-line options that set them."""
    for pattern, repl in _CLI_HINTS:
        text = re.sub(pattern, repl, text)
    return text


def _stop_workers() -> None:
    """Shut down joblib's reusable worker processes so that Ctrl-C leaves none behind."""
    try:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=False, kill_workers=True)
    except Exception:
        pass


def _fail(text: str) -> int:
    message = " ".join(cli_hints(text).split())  # one line, whatever the exception text holds
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
