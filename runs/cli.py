"""The `evoforge` command line. User mistakes print one `error:` line and exit 2; bugs keep their tracebacks."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import typer
from rich.console import Console

from search.protocols import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Evolutionary program search: run a job, resume it, report on it, emit its code.")
# No emoji codes, markup or highlighting: user text (CSV headers, paths, formulas) prints exactly as given,
# e.g. a header `root:x:0:0` must not become `root❌0:0`.
console = Console(soft_wrap=True, emoji=False, markup=False, highlight=False)
err = Console(stderr=True, soft_wrap=True, emoji=False, markup=False, highlight=False)


def _finish(result) -> None:
    from runs.api import describe_best

    console.print(f"run directory: {result.path}")
    console.print(f"stopped: {result.stop_reason}; {result.generations} generations, {result.evaluations} evaluations, "
                  f"{result.elapsed:.1f} s")
    if result.front:
        console.print(f"best: {describe_best(result)}")
        console.print(f"discovered code written to {result.code}")
    else:
        console.print("no feasible individual found; see failures.jsonl in the run directory")


@app.command()
def run(spec: str = typer.Argument(..., help="a spec file or a preset name (see `evoforge presets`)"),
        workers: int | None = typer.Option(None, help="Ray worker CPUs for the embedded Ray"),
        address: str | None = typer.Option(None, help="Ray cluster address (or set RAY_ADDRESS)"),
        seed: int | None = typer.Option(None, help="random seed; the same seed gives the same front"),
        out: Path | None = typer.Option(None, help="run directory (default: evoforge-runs/NAME-TIME)"),
        data: Path | None = typer.Option(None, help="CSV of samples (sets data.path)"),
        target: str | None = typer.Option(None, help="the CSV column to predict (sets data.target)"),
        local: bool = typer.Option(False, "--local", help="evaluate in-process instead of on Ray"),
        model_config: str | None = typer.Option(None, "--model-config", help="megakernel presets: a Llama config "
                                                "(llama-3.2-1b, hidden-1024, toy, or PATH/config.json)"),
        quiet: bool = typer.Option(False, help="no progress display")):
    """Run a search job from a spec or preset; prints where the discovered code was written."""
    from runs import api

    overrides = {"space.model_config": model_config} if model_config else None
    _finish(api.run(spec, overrides, out=out, seed=seed, workers=workers, address=address, data=data, target=target,
                    local=local, progress=not quiet))


@app.command()
def resume(rundir: Path = typer.Argument(..., help="a run directory made by `evoforge run`"),
           quiet: bool = typer.Option(False, help="no progress display")):
    """Continue a run from its last checkpoint (after a crash or kill); nothing done before it is lost."""
    from runs import api

    _finish(api.resume(rundir, progress=not quiet))


@app.command()
def report(rundir: Path = typer.Argument(..., help="a run directory")):
    """Print the front as a table and write a convergence plot (PNG) into the run directory."""
    from runs import report as reporting
    from runs.rundir import RunDirectory

    run_dir = RunDirectory.open(rundir)
    rows, reason = reporting.front_rows(run_dir)
    console.print(reporting.front_table(rows, f"front of {run_dir.path.name} (stopped: {reason})"))
    failures = run_dir.read_failures()
    if failures:
        console.print(f"{len(failures)} failed evaluation(s), see {run_dir.failures_path}")
    png = reporting.convergence_plot(run_dir, run_dir.path / "convergence.png")
    page = reporting.html_report(run_dir, png, run_dir.path / "report.html")
    console.print(f"convergence plot written to {png}")
    console.print(f"report page written to {page}")


@app.command()
def emit(rundir: Path = typer.Argument(..., help="a run directory"),
         lang: str | None = typer.Option(None, help="c, numpy, python, sympy, latex, triton, cuda (per space)"),
         rank: int | None = typer.Option(None, help="front member, 0 = best by the first objective "
                                                      "(default: the run's best, the simplest within its targets)")):
    """Write the code of one front member into RUNDIR/code and print its path."""
    from runs import api

    console.print(str(api.emit(rundir, lang, rank).path))


@app.command()
def submit(spec: str = typer.Argument(..., help="a spec file or a preset name"),
           address: str = typer.Option("http://127.0.0.1:8265", help="the cluster's Ray job server (dashboard)"),
           out: str | None = typer.Option(None, help="run directory on the cluster (default ~/evoforge-runs/NAME-TIME)"),
           seed: int | None = typer.Option(None, help="random seed"),
           wait: bool = typer.Option(False, "--wait", help="follow the job until it ends and print its log"),
           timeout: float = typer.Option(30.0, help="seconds each request to the job server may take")):
    """Submit a run to a Ray cluster as a Ray job (it keeps running when this machine goes away)."""
    from runs.spec import load_spec
    from runs.submit import submit as submit_job

    loaded = load_spec(spec, {"seed": seed})
    _, status = submit_job(loaded, address, out, wait, timeout=timeout, log=lambda text: console.print(text, markup=False, highlight=False))
    if wait and status != "SUCCEEDED":
        raise UserError(f"job: ended with status {status}; see the log above")


@app.command()
def compress(teacher: str = typer.Argument("all-MiniLM-L6-v2",
                                         help="a local Hugging Face model folder, or all-MiniLM-L6-v2 (packaged)"),
             to: str = typer.Option(..., "--to", help="size limit of the student, e.g. 3MB (MB = 10^6 bytes)"),
             data: str | None = typer.Option(None, help="folder of unlabelled text/code (default: code and English "
                                                      "prose installed on this machine); for a classifier teacher, "
                                                      "a CSV or JSON-lines file of labelled rows (required)"),
             out: str | None = typer.Option(None, help="output folder (default: NAME-SIZEMB, e.g. all-MiniLM-L6-v2-3MB)"),
             search_only: bool = typer.Option(False, "--search-only", help="stop after the shape search"),
             workers: int = typer.Option(1, help="Ray workers for re-ranking candidates (1 = in-process)"),
             dtype: str = typer.Option("float16", help="dtype the student is saved in: float16, bfloat16 or "
                                                        "float32 (float32 holds half the parameters)"),
             int8: bool = typer.Option(True, "--int8/--no-int8",
                                       help="let students store weight matrices as int8 rows with a scale each "
                                            "(half of float16's bytes, so twice the parameters per MB); "
                                            "--no-int8 keeps every weight in --dtype, and a transformer student "
                                            "then loads with transformers and sentence-transformers alone"),
             steps: int | None = typer.Option(None, help="distillation steps of the transformer student (default "
                                                         "2000 of 32 snippets; classifier teachers: 600 of 64 rows)"),
             prefer: str = typer.Option("fidelity", help="which student of the fidelity/latency front to write: "
                                                          "fidelity, speed or balanced"),
             time_budget: float = typer.Option(600.0, "--time-budget",
                                               help="seconds the command aims for: the transformer stage runs "
                                                    "only when its predicted time fits (0 = always run it)"),
             teacher_precision: str = typer.Option("auto", "--teacher-precision",
                                                   help="the teacher computing the training targets: auto "
                                                        "(bfloat16 where this CPU multiplies it natively, e.g. "
                                                        "AMX, else float32), float32, bfloat16 or int8; fidelity "
                                                        "is always measured against the float32 teacher"),
             text_column: str = typer.Option("text", "--text-column", help="classifier teachers: the column of "
                                                                         "--data holding the text"),
             label_column: str = typer.Option("label", "--label-column", help="classifier teachers: the column of "
                                                                            "--data holding the label (an id2label "
                                                                            "name or id); an optional 'split' "
                                                                            "column (train/test) fixes the held-out "
                                                                            "rows")):
    """Compress a pre-trained encoder into a student of at most N MB: GA shape search, then distillation.
    A teacher with a sequence-classification head is distilled on its soft labels and hidden states instead and
    scored by accuracy on the labelled rows of --data."""
    import os
    from dataclasses import replace

    # OpenMP threads that spin while they wait burn the cores other jobs need: on the shared 2-core machine a
    # training step took 3x the CPU time with two spinning threads (bench/README.md). Read when torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from objectives.model_size import BYTES_PER_PARAMETER
    from runs.compress import CompressSettings
    from runs.compress import compress as compress_model

    if dtype not in BYTES_PER_PARAMETER:
        raise UserError(f"--dtype: {dtype!r} is not supported; choose one of {', '.join(BYTES_PER_PARAMETER)}")
    if steps is not None and steps < 1:
        raise UserError(f"--steps: {steps} must be at least 1")
    if not time_budget >= 0:
        raise UserError(f"--time-budget: {time_budget:g} must be 0 (no limit) or more seconds")
    from spaces.architecture.teacher import TEACHER_PRECISIONS

    if teacher_precision not in TEACHER_PRECISIONS:
        raise UserError(f"--teacher-precision: {teacher_precision!r} is not known; choose one of "
                        f"{', '.join(TEACHER_PRECISIONS)}")
    settings = replace(CompressSettings(), dtype=dtype, time_budget=time_budget, int8=int8,
                       teacher_precision=teacher_precision,
                       **({"final_steps": steps} if steps is not None else {}))
    from spaces.architecture.classifier_teacher import classifier_architecture
    from spaces.architecture.teacher import resolve_teacher

    if classifier_architecture(resolve_teacher(teacher)):
        from runs.compress_classifier import ClassifierSettings, compress_classifier

        if search_only:
            raise UserError("--search-only: a classifier teacher has no shape search to stop after (its students "
                            "are static tables, trained in seconds); leave the option out")
        if workers != 1:
            raise UserError(f"--workers: {workers} asked for, but a classifier teacher's few students train in this "
                            "process (there are no candidates to re-rank on Ray workers); leave the option out")
        classifier = ClassifierSettings(**({"transformer_steps": steps} if steps is not None else {}))
        path = compress_classifier(teacher, to, data, out, settings, classifier, prefer=prefer,
                                   text_column=text_column, label_column=label_column,
                                   log=lambda text: console.print(text, markup=False, highlight=False))
        console.print(f"student written to {path}")
        return
    path = compress_model(teacher, to, data, out, search_only, workers, settings,
                          log=lambda text: console.print(text, markup=False, highlight=False), prefer=prefer)
    console.print(f"student written to {path}")


@app.command()
def validate(schedule: str = typer.Argument(..., help="a megakernel schedule (JSON, e.g. from `evoforge emit --lang json`)")):
    """Statically certify a megakernel schedule (deadlock- and race-freedom): ACCEPT, or REJECT with reasons."""
    from runs.validate import validate as validate_schedule

    code = validate_schedule(schedule)
    if code:
        raise typer.Exit(code)


@app.command()
def verify(path: Path = typer.Argument(..., help="an emitted file, a student folder, or its .cert.json")):
    """Re-run the checks of an artifact's certificate (NAME.cert.json) on the artifact: one line per check,
    exit 0 when all hold, 1 when any fails. Runs the artifact (C is compiled with the system compiler)."""
    from runs.verify import verify as verify_artifact

    code = verify_artifact(path, log=console.print)
    if code:
        raise typer.Exit(code)


@app.command()
def presets():
    """List the shipped presets, runnable as `evoforge run NAME`."""
    from runs import api

    for preset in api.presets():
        console.print(f"{preset.name:24s} {preset.description}")


_CONTROL = {c: repr(chr(c))[1:-1] for c in (*range(32), 127) if c != 9}


def one_line(text: str) -> str:
    """User text as given, except control characters escaped (a newline in a CSV header or a TOML key prints as
    \\n), so that an error stays one line."""
    return text.translate(_CONTROL)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""

    def show_warning(message, category, filename, lineno, file=None, line=None):
        err.print(f"warning: {message}", markup=False, highlight=False)

    warnings.showwarning = show_warning
    try:
        result = app(args=argv, standalone_mode=False)  # click returns an Exit's code in this mode
        if isinstance(result, int) and result:
            sys.exit(result)
    except UserError as exc:
        err.print(f"error: {one_line(str(exc))}", markup=False, highlight=False)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except Exception as exc:
        # click's usage errors, from click or from the copy vendored in typer >= 0.2x (not a click subclass)
        if type(exc).__module__.endswith("click.exceptions") and hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort" and type(exc).__module__.split(".")[0] in ("click", "typer"):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
