"""The `dlbench` command line: parses options and hands off to the library.

Experiment subcommands are generated from each registered experiment's `Options`
dataclass (see `dlbench.experiments.base`), so adding an experiment needs no edit here.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Literal, Optional

import typer
from typer.core import TyperGroup

import dlbench
from dlbench import experiments, render
from dlbench.errors import DlbenchError, RunStopped
from dlbench.results import Results, read_results

FORMATS = ["table", "markdown", "json", "csv"]


class OneLineGroup(TyperGroup):
    """Every user mistake becomes one line on stderr and exit status 2; never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args=args, prog_name=prog_name or "dlbench", complete_var=complete_var,
                              standalone_mode=False, **extra)
        except typer.TyperException as e:  # usage errors of the command line itself
            _fail(e.format_message(), getattr(e, "exit_code", 2))
        except DlbenchError as e:
            _fail(str(e), 2)
        except RunStopped as e:  # Ctrl-C or a lost cluster during the units: what is kept, in one line
            if e.exit_code == 130:  # not an error, as Ctrl-C anywhere else
                typer.echo(f"dlbench: {e}", err=True)
                sys.exit(130)
            _fail(str(e), e.exit_code)
        except typer.Abort:
            _fail("aborted", 1)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)

    def get_params(self, ctx):
        return _untyped_flags(super().get_params(ctx))

    def resolve_command(self, ctx, args):
        """An unknown command's line names the valid ones (after the closest, when one is close)."""
        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as e:
            if "No such command" in e.message:
                e.message = f"{e.message} Valid: {', '.join(self.list_commands(ctx))}."
            raise

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            _untyped_flags(command.get_params(ctx))
        return command

    def invoke(self, ctx):
        # Caught here, before Typer turns Ctrl-C into a silent exit 130. Files are written
        # atomically (a temporary file, then a rename), so an interrupted command wrote nothing.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            typer.echo("dlbench: interrupted: nothing written", err=True)
            sys.exit(130)


def _untyped_flags(params: list) -> list:
    """Flags (and --help) take no value: show no `<bool>` type beside them in --help."""
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    return params


def _fail(message: str, code: int):
    text = " ".join(str(message).split()).replace("Value error, ", "")
    typer.echo(f"dlbench: error: {text}", err=True)
    sys.exit(code)


app = typer.Typer(
    cls=OneLineGroup,
    name="dlbench",
    help="Put the classic claims of deep-learning theory to the test: small NumPy models, "
         "timed kernels, a verdict for each claim, Parquet results you can compare.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        typer.echo(f"dlbench {dlbench.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Put the classic claims of deep-learning theory to the test."""


def _console(quiet: bool = False):
    from rich.console import Console

    # Piped output is read in a file or a pager: give tables room rather than 80 columns.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(quiet=quiet, highlight=False, soft_wrap=False, width=200 if wide else None)


def emit(results: Results, fmt: str, quiet: bool = False) -> None:
    """Print `results` in the chosen format on stdout (extreme values print as they are, without warnings)."""
    import numpy as np

    with np.errstate(all="ignore"):
        _emit(results, fmt, quiet)


def _emit(results: Results, fmt: str, quiet: bool) -> None:
    if fmt == "table":
        render.render_rich(results, _console(quiet))
    elif fmt == "markdown":
        typer.echo(render.to_markdown(results))
    elif fmt == "json":
        typer.echo(render.to_json(results))
    else:
        typer.echo(render.to_csv(results), nl=False)


Format = Literal["table", "markdown", "json", "csv"]
Size = Literal["quick", "default", "paper"]
FormatOption = typer.Option("table", "--format", "-f", help="Output: a Rich table, Markdown, JSON or CSV.")


@app.command("show")
def show(
    file: Path = typer.Argument(..., help="A dlbench results file (.parquet)."),
    fmt: Format = FormatOption,
    claims: bool = typer.Option(False, "--claims", help="Only the claims: verdicts, checks, and findings over "
                                                        "each claim's grid and its control."),
) -> None:
    """Render any dlbench results file."""
    results = read_results(file)
    if claims:
        keep = results.rows["kind"].isin(["claim", "check", "grid"])
        results = Results(results.rows[keep], results.meta, results.path)
    emit(results, fmt)


@app.command("claims")
def claims_command(
    file: Optional[Path] = typer.Argument(None, help="A dlbench results file (.parquet)."),
    fmt: Format = FormatOption,
    list_: bool = typer.Option(False, "--list", help="The claim catalogue (what each claim measures, its "
                                                    "control, grid, threshold and literature), not a file."),
) -> None:
    """Print the claim verdicts of a results file (with their checks, controls and grids), or the catalogue."""
    if list_:
        if file is not None:
            raise DlbenchError("claims: give a results file or --list, not both")
        _print_catalogue(fmt)
        return
    if file is None:
        raise DlbenchError("claims: give a results file, or --list for the catalogue")
    show(file, fmt, claims=True)


def _print_catalogue(fmt: str) -> None:
    from dlbench import catalogue

    if fmt == "markdown":
        typer.echo(catalogue.markdown(), nl=False)
        return
    rows = [{"experiment": e, "claim": c.id, "statement": c.statement, "measured": c.measures,
             "control": c.control, "grid": catalogue._grid_text(c), "threshold": c.threshold,
             "literature": c.literature, "basis": c.basis} for e, c in catalogue.rows()]
    if fmt == "json":
        import json

        typer.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        import pandas as pd

        typer.echo(pd.DataFrame(rows).to_csv(index=False), nl=False)
    else:
        from rich.table import Table as RichTable

        t = RichTable(title="dlbench claims", title_justify="left")
        for col in ("claim", "statement", "control", "grid"):
            t.add_column(col, overflow="fold", ratio=2 if col in ("statement", "control") else None)
        for r in rows:
            t.add_row(r["claim"], r["statement"], r["control"] or "—", r["grid"])
        _console().print(t)


@app.command("report")
def report_command(
    files: list[Path] = typer.Argument(..., metavar="FILE...", help="One or more dlbench results files."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o",
                             help="report.html: one self-contained page (figures inline, no network, no "
                                  "scripts); report.md: Markdown with its figures as SVG files in "
                                  "report-figures/ beside it."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out (and its figures) if it exists."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the figures (needs matplotlib)."),
) -> None:
    """Write a report a person can read: per experiment, its claims, verdicts, checks and figures."""
    from dlbench import report

    report.check_out(out, force)
    runs = [read_results(f) for f in files]
    written = report.write_report(runs, out, force=force, figures=figures)
    for note in written.notes:
        typer.echo(f"dlbench: note: {note}", err=True)
    typer.echo(f"report written to {out}", err=True)


@app.command("env")
def env_command(
    fmt: Literal["table", "json"] = typer.Option("table", "--format", "-f", help="Output: a table or JSON."),
    quick: bool = typer.Option(False, "--quick", help="A shorter bandwidth probe."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="BLAS/OpenMP threads."),
) -> None:
    """The machine fingerprint and the copy-bandwidth probe."""
    import json

    from threadpoolctl import threadpool_limits

    from dlbench.env import fingerprint
    from dlbench.timing import copy_bandwidth

    if threads is not None and threads > (os.cpu_count() or 1):
        raise DlbenchError(f"--threads must be between 1 and the {os.cpu_count()} cores this machine has")
    with threadpool_limits(limits=threads) if threads else _null():
        fp = fingerprint()
        bw = copy_bandwidth(quick)
    if fmt == "json":
        typer.echo(json.dumps({"fingerprint": fp, "bandwidth": bw}, indent=2))
        return
    from rich.table import Table

    t = Table(title="dlbench env", title_justify="left", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value", overflow="fold")
    for k, v in fp.items():
        if k == "env":
            v = " ".join(f"{a}={b}" for a, b in v.items()) or "—"
        t.add_row(k, str(v))
    for k, v in bw.items():
        t.add_row(f"copy bandwidth {k}", f"{v:.3g} GB/s")
    _console().print(t)


def _null():
    import contextlib

    return contextlib.nullcontext()


# Options every experiment command shares, as (name, annotation, typer.Option).
def _shared_options() -> list[tuple[str, object, object]]:
    return [
        ("seed", str, typer.Option("0", "--seed", metavar="SEED[,SEED...]",
                                   help="Base seed (0 or more); replica i uses seed + i. Several, e.g. "
                                        "0,1000,2000: every claim is judged on each, and a verdict that "
                                        "changes with the base seed is inconclusive.")),
        ("seeds", Optional[int], typer.Option(None, "--seeds", min=1, help="Number of seeds (default: 6, the fewest a 95% bootstrap interval needs).")),
        ("quick", bool, typer.Option(False, "--quick", help="The small size used by tests and CI (--size quick).")),
        ("size", Optional[Size], typer.Option(None, "--size", help="quick, default or paper: the sizes of the papers "
                                                                    "behind the claims, for every core or a cluster "
                                                                    "(each option's --help says its paper value).")),
        ("out", Optional[Path], typer.Option(None, "--out", "-o",
                                             help="Results file (default: results/<name>-<time>.parquet).")),
        ("no_save", bool, typer.Option(False, "--no-save", help="Do not write a results file.")),
        ("force", bool, typer.Option(False, "--force", help="Overwrite --out if it exists.")),
        ("fmt", Format, FormatOption),
        ("threads", Optional[int], typer.Option(None, "--threads", min=1,
                                                help="BLAS/OpenMP threads of each unit (default: 1; the numbers "
                                                     "depend on it, not on --workers).")),
        ("workers", Optional[str], typer.Option(None, "--workers", "-w", metavar="N|auto",
                                                help="Local worker processes that run the units side by side "
                                                     "(auto: one per core; default: 1, in this process).")),
        ("scheduler", Optional[str], typer.Option(None, "--scheduler", metavar="ADDRESS",
                                                  help="Run the units on the Dask cluster of this scheduler, "
                                                       "tcp://HOST:8786 or tls://HOST:8786 (default: "
                                                       "$DLBENCH_SCHEDULER; needs pip install 'dlbench[dist]').")),
        ("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress bar and no table.")),
    ]


def _experiment_options(module: ModuleType) -> list[tuple[str, object, object]]:
    out = []
    for f in dataclasses.fields(module.Options):
        meta = f.metadata
        typ = f.type if not isinstance(f.type, str) else eval(f.type, vars(module))  # noqa: S307
        help_text = meta.get("help", "")
        kwargs = {"help": help_text}
        if meta.get("choices"):
            choices = list(meta["choices"]())
            if typ is str:
                typ = Literal[tuple(choices)]
            else:
                kwargs["help"] = f"{help_text} Comma-separated, from: {', '.join(choices)}."
        if meta.get("min") is not None:
            kwargs["min"] = meta["min"]
        if meta.get("max") is not None:
            kwargs["max"] = meta["max"]
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        flag = "--" + f.name.replace("_", "-")
        if typ is bool:
            flag = f"{flag}/--no-{f.name.replace('_', '-')}"
        default = f.default if f.default is not None else "none"
        sizes = "".join(f"; {size}: {meta[size]}" for size in ("quick", "paper") if meta.get(size) is not None)
        kwargs["help"] += f" (default: {default}{sizes})"
        # None means "the default, or the quick value under --quick"; the dataclass holds the default.
        out.append((f.name, Optional[typ] if typ is not bool else Optional[bool],
                    typer.Option(None, flag, show_default=False, **kwargs)))
    return out


def _signature(options: list[tuple[str, object, object]]):
    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann)
              for name, ann, opt in options]
    return inspect.Signature(params), {name: ann for name, ann, _ in options}


def _progress(quiet: bool, fmt: str):
    from dlbench.experiments.base import Progress

    if quiet or fmt != "table" or not sys.stderr.isatty():
        return Progress()
    return RichProgress()


class RichProgress:
    """A Rich progress bar on stderr: one bar over the run's units (workers, done / running / failed, ETA),
    and a bar for any other long loop."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("ETA"),
                             TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self._open = 0

    def _live(self):
        import contextlib

        @contextlib.contextmanager
        def cm():
            if self._open == 0:
                self._bar.start()
            self._open += 1
            try:
                yield
            finally:
                self._open -= 1
                if self._open == 0:
                    self._bar.stop()

        return cm()

    def task(self, description: str, total: float | None = None):
        import contextlib

        @contextlib.contextmanager
        def cm():
            with self._live():
                tid = self._bar.add_task(description, total=total, status="")
                try:
                    yield lambda advance=1: self._bar.advance(tid, advance)
                finally:
                    self._bar.remove_task(tid)

        return cm()

    def units(self, total: int, workers: int, done: int = 0):
        import contextlib

        state = {"done": done, "running": 0, "failed": 0, "workers": workers, "phase": "units"}

        def status() -> str:
            who = "timings, one at a time" if state["phase"] == "timings" else \
                f"{state['workers']} worker{'s' if state['workers'] != 1 else ''}"
            return f"{who} · {state['running']} running · {state['failed']} failed"

        @contextlib.contextmanager
        def cm():
            with self._live():
                tid = self._bar.add_task("units", total=total, completed=done, status=status())

                def update(**counts):
                    state.update(counts)
                    self._bar.update(tid, completed=state["done"] + state["failed"],
                                     description=state["phase"], status=status())

                try:
                    yield update
                finally:
                    self._bar.remove_task(tid)

        return cm()


def _run_and_emit(plan, name: str, shared: dict, plot: Path | None = None, plot_module=None) -> int:
    from dlbench.runner import default_out, run_many

    fmt, quiet = shared["fmt"], shared["quiet"]
    if shared["no_save"] and shared["out"] is not None:
        raise DlbenchError("--out and --no-save contradict each other: pass one of them")
    out = None if shared["no_save"] else (shared["out"] or default_out(name))
    if plot is not None:
        _check_plot(plot, shared["force"])
    results = run_many(plan, seed=parse_seeds(shared["seed"]), seeds=shared["seeds"], quick=shared["quick"],
                       size=shared["size"], threads=shared["threads"], out=out, force=shared["force"],
                       workers=shared["workers"], scheduler=scheduler_of(shared),
                       progress=_progress(quiet, fmt), argv=["dlbench", *sys.argv[1:]])
    units = results.meta.get("units", {})
    if units.get("reused"):
        typer.echo(f"dlbench: reused {units['reused']} of {units['total']} units that an earlier, unfinished run "
                   f"of the same units left in {units['cache']}", err=True)
    for note in results.meta.get("notes", []):
        typer.echo(f"dlbench: warning: {note}", err=True)
    for f in results.meta.get("failed_units", []):
        typer.echo(f"dlbench: unit {f['experiment']} {f['part']} at base seed {f['base_seed']} failed twice: "
                   f"{f['error']}", err=True)
    try:
        if not quiet:
            emit(results, fmt)
        if plot is not None and plot_module is not None:
            try:
                plot_module.plot(results, plot)
            except OSError as e:
                raise DlbenchError(f"cannot write the plot {plot}: {e.strerror or e}") from None
            typer.echo(f"plot written to {plot}", err=True)
    except KeyboardInterrupt:
        if results.path is None:
            raise
        typer.echo(f"dlbench: interrupted: the results were already written to {results.path}", err=True)
        sys.exit(130)
    if results.path is not None:
        typer.echo(f"results written to {results.path}", err=True)
    if units.get("failed"):
        kept = "the results keep the others" + (" and the same command reruns only the failed ones"
                                                if units.get("cache") else "")
        typer.echo(f"dlbench: error: {units['failed']} of {units['total']} units failed (named above); {kept}",
                   err=True)
        return 1
    return 0


def scheduler_of(shared: dict) -> str | None:
    """--scheduler, else $DLBENCH_SCHEDULER unless --workers asks for local processes."""
    if shared.get("scheduler"):
        return shared["scheduler"]
    if shared.get("workers") is None:
        return os.environ.get("DLBENCH_SCHEDULER") or None
    return None


def parse_seeds(text: str) -> list[int]:
    """'0' -> [0]; '0,1000,2000' -> [0, 1000, 2000]; each a whole number of 0 or more."""
    from dlbench.experiments.base import parse_numbers

    seeds = parse_numbers(text, int, what="--seed", positive=False)
    if any(s < 0 for s in seeds):
        raise DlbenchError(f"--seed {text}: every base seed must be 0 or more")
    return seeds


def _check_plot(path: Path, force: bool) -> None:
    from dlbench.results import check_writable

    if path.suffix.lower() not in (".png", ".svg", ".pdf") or not path.stem:
        raise DlbenchError(f"--plot {path}: the file name must end in .png, .svg or .pdf")
    check_writable(path, force, what="--plot")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise DlbenchError("--plot needs matplotlib: pip install 'dlbench[plot]'") from None


def _experiment_command(module: ModuleType):
    shared = _shared_options()
    own = _experiment_options(module)
    options = shared + own
    has_plot = callable(getattr(module, "plot", None))
    if has_plot:
        options.append(("plot", Optional[Path], typer.Option(None, "--plot", help="Also draw a figure (.png, .svg, .pdf).")))
    shared_names = {n for n, _, _ in shared}
    own_names = {n for n, _, _ in own}

    def command(**kwargs):
        from dlbench.experiments.base import has_size
        from dlbench.runner import check_size, make_options

        size = check_size(kwargs["size"], kwargs["quick"])
        if not has_size(module, size):
            raise DlbenchError(f"--size {size}: {module.NAME} has no {size} size yet (none of its options has a "
                               f"{size} value)")
        opts = make_options(module, size=size, **{k: kwargs[k] for k in own_names})
        return _run_and_emit([(module, opts)], module.NAME, {k: kwargs[k] for k in shared_names},
                             plot=kwargs.get("plot"), plot_module=module if has_plot else None)

    command.__signature__, command.__annotations__ = _signature(options)
    command.__doc__ = module.__doc__ or module.HELP
    command.__name__ = module.NAME
    return command


def _register_experiments() -> None:
    for name in experiments.names():
        module = experiments.load(name)
        app.command(name, help=module.HELP)(_experiment_command(module))


def _suite_command():
    shared = _shared_options()

    def suite(**kwargs):
        """Run every registered experiment, all claims, into one results file."""
        import dataclasses

        from dlbench.experiments.base import has_size
        from dlbench.runner import check_size, make_options

        names = experiments.names()
        if not names:
            raise DlbenchError("no experiments are registered")
        size = check_size(kwargs["size"], kwargs["quick"])
        plan, unsized = [], []
        for m in map(experiments.load, names):
            own = dict(getattr(m, "SUITE_OPTIONS", {}))
            if size == "paper":  # the suite's small values give way to the paper's
                own = {k: v for f in dataclasses.fields(m.Options) for k, v in own.items()
                       if k == f.name and f.metadata.get("paper") is None}
            if not has_size(m, size):
                unsized.append(m.NAME)
            plan.append((m, make_options(m, size=size, **own)))
        if unsized:
            typer.echo(f"dlbench: warning: {', '.join(unsized)} ha{'s' if len(unsized) == 1 else 've'} no {size} "
                       f"size yet and run{'s' if len(unsized) == 1 else ''} at the default size", err=True)
        return _run_and_emit(plan, "suite", kwargs)

    suite.__signature__, suite.__annotations__ = _signature(shared)
    return suite


@app.command("compare")
def compare(
    files: Optional[list[Path]] = typer.Argument(None, metavar="BASE NEW",
                                                 help="The reference results file and the one to judge against it."),
    base: Optional[list[Path]] = typer.Option(None, "--base", "-b", metavar="FILE",
                                              help="A base run; repeat for several runs of the base."),
    new: Optional[list[Path]] = typer.Option(None, "--new", "-n", metavar="FILE",
                                             help="A new run; repeat for several. With several runs a side, a "
                                                  "change counts only when every base/new pairing shows it."),
    threshold: str = typer.Option("10%", "--threshold", "-t",
                                  help="Smallest change that counts, as 10% or 0.1."),
    alpha: float = typer.Option(0.01, "--alpha", help="Significance level of the Mann-Whitney test."),
    normalize: bool = typer.Option(False, "--normalize",
                                   help="Divide each file's timings by its own copy-bandwidth probe "
                                        "(compare two machines)."),
    fail_on: str = typer.Option("timing,quality,verdict", "--fail-on",
                                help="What makes the exit status 1: comma list of timing, quality, verdict; "
                                     "or all, none."),
    fmt: Literal["table", "markdown", "json"] = typer.Option("table", "--format", "-f",
                                                             help="Output: a Rich table (what changed), "
                                                                  "Markdown or JSON (everything)."),
    show_all: bool = typer.Option(False, "--all", help="Table: every row and verdict, not only what changed."),
    only_changed: bool = typer.Option(False, "--only-changed",
                                      help="Markdown and JSON: leave out what did not change."),
) -> int:
    """Compare results files: exit 0 if nothing regressed, 1 on a regression, 2 on an error."""
    from dlbench import compare as cmp
    from dlbench import compare_render

    bases, news = _compare_sides(files or [], base or [], new or [])
    if show_all and only_changed:
        raise DlbenchError("--all and --only-changed contradict each other: pass one of them")
    c = cmp.compare_files(bases, news, threshold=cmp.parse_threshold(threshold), alpha=alpha,
                          normalize=normalize, fail_on=cmp.parse_fail_on(fail_on))
    for w in c.warnings:
        typer.echo(f"dlbench: warning: {w}", err=True)
    text = compare_render.render(c, fmt, _console(), show_all=show_all, only_changed=only_changed)
    if text is not None:
        typer.echo(text, nl=not text.endswith("\n"))
    return c.exit_status


def _compare_sides(files: list[Path], base: list[Path], new: list[Path]) -> tuple[list[Path], list[Path]]:
    """BASE NEW, or --base FILE.. --new FILE..; never a mixture."""
    if files and (base or new):
        raise DlbenchError("compare: give BASE NEW, or --base and --new (each may repeat), not both")
    if files:
        if len(files) != 2:
            raise DlbenchError(f"compare: expected two files, BASE and NEW, got {len(files)}; "
                               "for several runs a side use --base and --new")
        return [files[0]], [files[1]]
    if not base or not new:
        raise DlbenchError("compare: give BASE NEW, or at least one --base and one --new")
    return base, new


_register_experiments()
app.command("suite", help="Run every registered experiment (all claims) into one results file.")(_suite_command())


def main() -> None:
    app()
