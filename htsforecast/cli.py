"""Command-line interface: ``htsforecast <command> ...``.

Argument parsing only; every command calls the public API. Each subcommand is a pair of
functions, ``_add_<name>_parser(subparsers)`` (registers its options and sets ``func``) and
``_cmd_<name>(args) -> int`` (does the work); add a command by writing that pair and listing the
first in :data:`_SUBCOMMANDS`.

Errors raised on purpose (:class:`~htsforecast.errors.HTSError`) and file errors (``OSError``)
end the program with one line ``htsforecast: error: <message>`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
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
    from htsforecast.job import METHODS, MODELS

    p = subparsers.add_parser(
        "run",
        help="the whole job: aggregate, forecast, reconcile, evaluate, write files",
        description="Aggregate the data to every node, fit base forecasts, reconcile them with "
        "every method, evaluate by rolling-origin cross-validation, pick the best model x method "
        "and write forecasts.csv, accuracy.csv, selection.json and plots. With no arguments it "
        "runs on the bundled radon panel.",
    )
    p.add_argument("--data", help="bottom-level data, CSV or Parquet (default: bundled data set)")
    p.add_argument("--dataset", help="bundled data set used without --data (default radon_panel)")
    p.add_argument("--formula", help="hierarchy, e.g. '(state / county) * floor'")
    p.add_argument("--time-col", dest="time_col", help="date column (default ds)")
    p.add_argument("--target-col", dest="target_col", help="value column (default y)")
    p.add_argument("--freq", help="pandas frequency alias: MS, QS, W, D ... (never guessed)")
    p.add_argument("--h", type=int, help="forecast horizon (default: one season)")
    p.add_argument("--models", help=f"comma-separated, from: {', '.join(MODELS)} (default ets)")
    p.add_argument("--methods", help=f"comma-separated, from: {', '.join(METHODS)}")
    p.add_argument("--level", help="interval levels, e.g. 80,95")
    p.add_argument("--cv-windows", dest="cv_windows", type=int, help="CV origins (default 1)")
    p.add_argument("--metric", help="selection metric: mase, rmse, mae (default mase)")
    p.add_argument(
        "--nonnegative",
        action="store_true",
        default=None,
        help="non-negative MinTrace forecasts (negative bottoms fixed at 0, re-projected)",
    )
    p.add_argument("--n-jobs", dest="n_jobs", type=int, help="parallel jobs (default -1: all)")
    p.add_argument("--out", help="output directory (default ./htsforecast-out/)")
    p.add_argument("--no-plots", dest="plots", action="store_false", default=None)
    p.add_argument("--config", help="TOML file with the same settings (CLI options win)")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from htsforecast.job import RunConfig, run

    options = {k: v for k, v in vars(args).items() if k not in ("func", "command", "config")}
    run(RunConfig.from_sources(args.config, options))
    return 0


#: Registration functions of the subcommands, in the order ``--help`` shows them.
_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_run_parser,
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
        0 on success, 2 on a usage error, an :class:`~htsforecast.errors.HTSError`, an
        ``OSError`` or input pandas cannot read (``ValueError``/``TypeError``):
        reported as one line on stderr, no traceback.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage error, --help or --version: argparse already printed
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except (HTSError, OSError) as exc:
        return _fail(str(exc))
    except (ValueError, TypeError) as exc:
        # input pandas/numpy could not read (unparseable dates, malformed CSV, bad config
        # values): still one line, naming the exception type
        return _fail(f"{type(exc).__name__}: {exc}")


def _fail(text: str) -> int:
    message = " ".join(text.split())  # one line, whatever the exception text holds
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
