"""``evofusion`` command line: thin commands over the Python API.

Every bad value exits with code 2 and a message naming the field, before any run directory exists.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console
from rich.table import Table

from evofusion.errors import EvoFusionError


class _Command(typer.core.TyperCommand):
    """Every command's help: no type label on flags (``--quiet`` takes no value), ``<str>...`` for a
    repeatable option, and the config default of an option whose own default is "from the config"."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for p in self.get_params(ctx):
            if getattr(p, "is_flag", False):
                p.metavar = ""
            elif getattr(p, "multiple", False) and p.metavar is None:
                p.metavar = "<str>..."
        super().format_help(ctx, formatter)


app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Evolve small students while they distill from a teacher.")
app.command = functools.partial(app.command, cls=_Command)  # type: ignore[method-assign]
teacher_app = typer.Typer(no_args_is_help=True, help="Train and inspect zoo teachers.")
teacher_app.command = functools.partial(teacher_app.command, cls=_Command)  # type: ignore[method-assign]
app.add_typer(teacher_app, name="teacher")
console = Console(stderr=True, soft_wrap=True)  # error lines stay whole (paths copyable)
out = Console()
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document for scripts (no tables, no "
                                        "progress)")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")]
_TRACKER_HELP = "tensorboard | mlflow (repeat for both); logs go to RUN_DIR/tensorboard, RUN_DIR/mlflow.db"


def _version(value: bool) -> None:
    if value:
        from evofusion import __version__

        out.print(f"evofusion {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    """Evolve small students while they distill from a teacher."""


@functools.cache
def _config_defaults(kind: str) -> dict[str, Any]:
    """The defaults of a config model, flattened to dotted keys (``strategy.population``)."""
    from evofusion.config import SearchConfig

    if kind == "grow":
        from evofusion.growth.grow import GrowConfig as model
    elif kind == "weights":
        from evofusion.weights.study import WeightStudyConfig as model
    elif kind == "supernet":
        from evofusion.supernet.train import SupernetConfig as model
    else:
        model = SearchConfig
    flat: dict[str, Any] = {}

    def walk(prefix: str, d: dict[str, Any]) -> None:
        for k, v in d.items():
            if isinstance(v, dict) and v:
                walk(f"{prefix}{k}.", v)
            else:
                flat[prefix + k] = v
    walk("", model().model_dump())
    return flat


def _d(key: str, kind: str = "search") -> str | bool:
    """``show_default`` text for an option whose value comes from the config when not given."""
    v = _config_defaults(kind).get(key)
    if v is None:
        return False
    return ",".join(map(str, v)) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v)


def _fail(e: Exception) -> None:
    console.print(f"[bold red]error:[/] {e}", highlight=False)
    raise typer.Exit(2)


def _trackers(names: list[str]) -> list[Any]:
    """Tracker callbacks by name (``--tracker``); they log under the run directory."""
    from evofusion.engine.trackers import TRACKERS

    valid = TRACKERS.names()
    for n in names:
        if n not in valid:
            raise EvoFusionError(f"--tracker: unknown tracker {n!r}; valid: {', '.join(valid)}")
    return [TRACKERS.create(n) for n in dict.fromkeys(names)]


def _parse_set(items: list[str]) -> dict[str, Any]:
    import yaml

    from evofusion.config import parse_yaml

    res = {}
    for it in items:
        if "=" not in it:
            raise EvoFusionError(f"--set {it!r}: expected KEY=VALUE, e.g. --set distill.lr=0.01")
        k, v = it.split("=", 1)
        try:
            res[k.strip()] = parse_yaml(v)
        except yaml.YAMLError as e:
            raise EvoFusionError(f"--set {it!r}: the value is not valid YAML ({e})") from None
    return res


def _search_config(config: Path | None, overrides: dict[str, Any]) -> Any:
    """The SearchConfig from a YAML file with dotted overrides, or from the overrides alone."""
    from evofusion.config import load_config, set_dotted, validate_config

    if config is not None:
        return load_config(config, overrides)
    d: dict[str, Any] = {}
    for k, v in overrides.items():
        set_dotted(d, k, v)
    return validate_config(d)


@app.command()
def search(
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file")] = None,
    run_dir: Annotated[Path, typer.Option("--run-dir", help="new run directory")] = Path("runs/search"),
    data: Annotated[str | None, typer.Option("--data", show_default=_d("data.name"), help="digits | fashion-mnist | mnist | cifar10")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="folder with the data files")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="use only N training examples")] = None,
    teacher: Annotated[str | None, typer.Option("--teacher", help="teacher dir, weights file, TorchScript, .onnx, "
                                                "or .npz of precomputed outputs")] = None,
    teacher_module: Annotated[str | None, typer.Option("--teacher-module", help="pkg.mod:factory returning an "
                                                       "nn.Module (weights: --teacher FILE.safetensors)")] = None,
    no_teacher: Annotated[bool, typer.Option("--no-teacher", help="plain training, no KD")] = False,
    strategy: Annotated[str | None, typer.Option("--strategy", show_default=_d("strategy.name"), help="random | ga | nsga2 | regularized")] = None,
    population: Annotated[int | None, typer.Option("--population", show_default=_d("strategy.population"), help="candidates per generation")] = None,
    generations: Annotated[int | None, typer.Option("--generations", show_default=_d("generations"))] = None,
    max_evaluations: Annotated[int | None, typer.Option("--max-evaluations")] = None,
    max_seconds: Annotated[float | None, typer.Option("--max-seconds", help="wall-clock budget")] = None,
    seed: Annotated[int | None, typer.Option("--seed", show_default=_d("seed"))] = None,
    executor: Annotated[str | None, typer.Option("--executor", show_default=_d("executor"), help="serial | process | ray")] = None,
    workers: Annotated[int | None, typer.Option("--workers", show_default=_d("workers"))] = None,
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster HOST:PORT (or auto)")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="seconds per candidate, then FAILED")] = None,
    retries: Annotated[int | None, typer.Option("--retries", show_default=_d("retries"), help="re-runs after a worker/node death")] = None,
    recycle_after: Annotated[int | None, typer.Option("--recycle-after", help="replace a worker after N")] = None,
    cpus: Annotated[float | None, typer.Option("--cpus-per-candidate", show_default=_d("resources.cpus"))] = None,
    gpus: Annotated[float | None, typer.Option("--gpus-per-candidate", show_default=_d("resources.gpus"), help="0.25 = 4 per GPU")] = None,
    device: Annotated[str | None, typer.Option("--device", show_default=_d("device"), help="cpu | cuda | cuda:N | auto")] = None,
    objectives: Annotated[str | None, typer.Option("--objectives", show_default=_d("objectives.names"), help="comma list, e.g. accuracy,params")] = None,
    constraint: Annotated[list[str] | None, typer.Option("--constraint", help="e.g. 'params<=50000'")] = None,
    epochs: Annotated[float | None, typer.Option("--epochs", help="training epochs per candidate (instead of steps)")] = None,
    steps: Annotated[int | None, typer.Option("--steps", show_default=_d("distill.steps"), help="training steps per candidate")] = None,
    data_fraction: Annotated[float | None, typer.Option("--data-fraction", show_default=_d("distill.data_fraction"), help="share of train data")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", show_default=_d("final.top_k"), help="winners to fine-tune on full data")] = None,
    final_epochs: Annotated[float | None, typer.Option("--final-epochs", show_default=_d("final.epochs"))] = None,
    final_seconds: Annotated[float | None, typer.Option("--final-seconds", help="wall clock of the whole fine-tune "
                                                        "phase, shared by the --top-k winners")] = None,
    final_split: Annotated[str | None, typer.Option("--final-split", show_default=_d("final.split"),
                                                    help="how --final-seconds is shared: time (even seconds "
                                                    "per winner) | steps (the same step count for all)")] = None,
    rungs: Annotated[str | None, typer.Option("--rungs", help="multi-fidelity rungs in total steps, e.g. "
                                              "150,450,1350,4050 (the best 1/eta of a rung continue)")] = None,
    eta: Annotated[float | None, typer.Option("--eta", help="reduction factor between rungs (3 when not given)")] = None,
    lamarckian: Annotated[bool | None, typer.Option("--lamarckian/--no-lamarckian", help="function-preserving "
                                                    "children start with their parent's exact function")] = None,
    controller: Annotated[str | None, typer.Option("--controller", help="operator controller: bandit | rl | "
                                                   "random (picks each child's mutation, learns from its gain "
                                                   "over the parent)")] = None,
    supernet: Annotated[str | None, typer.Option("--supernet", help="directory of a trained supernet run: score "
                                                 "its subnets from the shared weights instead of training "
                                                 "candidates (evofusion supernet)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE config override")] = None,
    tracker: Annotated[list[str] | None, typer.Option("--tracker", help=_TRACKER_HELP)] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run an evolutionary search with KD in the loop; writes RUN_DIR with database, weights, report."""

    try:
        overrides: dict[str, Any] = {}
        flags = {"data.name": data, "data.data_dir": data_dir, "data.limit": limit, "teacher.path": teacher,
                 "teacher.module": teacher_module, "strategy.name": strategy, "strategy.population": population, "generations": generations,
                 "max_evaluations": max_evaluations, "max_seconds": max_seconds, "seed": seed,
                 "executor": executor, "workers": workers, "device": device, "address": address,
                 "timeout": timeout, "retries": retries, "recycle_after": recycle_after,
                 "resources.cpus": cpus, "resources.gpus": gpus, "distill.epochs": epochs,
                 "distill.data_fraction": data_fraction, "final.top_k": top_k, "final.epochs": final_epochs,
                 "final.max_seconds": final_seconds, "final.split": final_split}
        overrides.update({k: v for k, v in flags.items() if v is not None})
        if no_teacher:
            overrides["teacher.enabled"] = False
        if epochs is not None and steps is None:
            overrides["distill.steps"] = None  # an epoch budget replaces the default step budget
        if steps is not None:
            overrides["distill.steps"] = steps
        if objectives is not None:
            overrides["objectives.names"] = [o.strip() for o in objectives.split(",") if o.strip()]
        if constraint:
            overrides["objectives.constraints"] = constraint
        if rungs is not None:
            try:
                overrides["scheduler.rungs"] = [int(v) for v in rungs.split(",") if v.strip()]
            except ValueError:
                raise EvoFusionError(f"--rungs: expected step counts such as 100,300,900, got {rungs!r}") from None
        if eta is not None:
            overrides["scheduler.eta"] = eta
        if lamarckian is not None:
            overrides["lamarckian"] = lamarckian
        if controller is not None:
            overrides["controller.name"] = controller
        if supernet is not None:
            overrides["supernet.run"] = supernet
        overrides.update(_parse_set(set_ or []))
        cfg = _search_config(config, overrides)
        _run(cfg, run_dir, quiet=quiet or as_json, trackers=_trackers(tracker or []), as_json=as_json)
    except EvoFusionError as e:
        _fail(e)


def _run(cfg: Any, run_dir: Path, quiet: bool, trackers: list[Any] | None = None, as_json: bool = False) -> None:
    from evofusion.engine import Study

    # trackers first: Study matches saved callback states by position, and --quiet drops the bar
    callbacks = [*(trackers or []), *_progress(quiet)]
    _complete("search", Study.create(cfg, run_dir, callbacks=callbacks, log=_logger(quiet)), quiet, as_json)


@app.command()
def resume(
    run_dir: Path,
    generations: Annotated[int | None, typer.Option("--generations", help="new total generations")] = None,
    max_evaluations: Annotated[int | None, typer.Option("--max-evaluations")] = None,
    allow_config_change: Annotated[bool, typer.Option("--allow-config-change")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE config override")] = None,
    tracker: Annotated[list[str] | None, typer.Option("--tracker", help=_TRACKER_HELP)] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Continue any stopped or killed run (search, prune, grow, evolve-weights) exactly where its last
    checkpoint ended. A config change (--set, beyond the budget keys) needs --allow-config-change and
    is recorded in the run's config history from this generation on."""
    from evofusion.store import RunStore

    try:
        with RunStore(run_dir, lock=False, readonly=True) as s:
            kind = s.kind()
        ov = _parse_set(set_ or [])
        if generations is not None:
            ov["generations"] = generations
        if max_evaluations is not None:
            if kind not in ("search", "prune"):
                raise EvoFusionError(f"--max-evaluations: a {kind} run has no evaluation budget")
            ov["max_evaluations"] = max_evaluations
        if kind == "grow" and "generations" in ov:
            raise EvoFusionError("--generations: a grow run's budget is steps; use --set growth.steps=N")
        if kind == "supernet" and "generations" in ov:
            raise EvoFusionError("--generations: a supernet run's budget is steps; use --set supernet.steps=N")
        nested: dict[str, Any] = {}
        from evofusion.config import set_dotted

        for k, v in ov.items():
            set_dotted(nested, k, v)
        quiet = quiet or as_json
        log = _logger(quiet)
        callbacks = [*_trackers(tracker or []), *_progress(quiet)]
        section = {"weights": "weights", "grow": "grow", "supernet": "supernet"}.get(kind)
        overrides = _merge_top(run_dir, nested, section)
        from evofusion.engine.run import resume_run

        run = resume_run(run_dir, overrides=overrides, allow_config_change=allow_config_change,
                         callbacks=callbacks, log=log)
        _complete(kind, run, quiet, as_json)
    except EvoFusionError as e:
        _fail(e)


def _kind_config(config: Path | None, flags: dict[str, Any], no_teacher: bool, set_: list[str] | None) -> dict[str, Any]:
    """The config mapping of a grow / supernet command: the YAML file (if any), then the flags that
    were given, then ``--set KEY=VALUE`` overrides (validation is the run's)."""
    from evofusion.config import read_yaml, set_dotted

    d: dict[str, Any] = read_yaml(config) if config is not None else {}
    if no_teacher:
        flags = {**flags, "teacher.enabled": False}
    for k, v in {**{k: v for k, v in flags.items() if v is not None}, **_parse_set(set_ or [])}.items():
        set_dotted(d, k, v)
    return d


def _progress(quiet: bool) -> list[Any]:
    """Progress callbacks of a long command: a Rich bar on a terminal, log lines otherwise."""
    from evofusion.viz.progress import make_progress

    return make_progress(console, quiet)


def _logger(quiet: bool) -> Any:
    return (lambda *a: None) if quiet else (lambda msg: console.print(msg, highlight=False))


def _complete(kind: str, run: Any, quiet: bool, as_json: bool = False) -> None:
    """Run a created or resumed run of any kind to its end (``Run.complete``), write report.html and
    print its result: the Pareto table of a search, the kind's summary otherwise, or with ``as_json``
    one JSON document (``_result_doc``)."""
    from evofusion.viz import write_html_report

    try:
        result = run.complete(log=_logger(quiet or as_json))
        html = write_html_report(run.store)
        if as_json:
            _print_json(_result_doc(kind, run, result, html))
            return
        text = run.result_text(result)
        if kind == "prune":  # the seed's table, also with --quiet (it is the command's answer)
            print(text, flush=True)
            if not quiet:
                console.print(f"report: {html}")
        elif not quiet:
            if kind == "search":
                _print_table(run.store)
            else:
                out.print(text)
            console.print(f"report: {html}")
    finally:
        run.close()


def _print_json(doc: Any) -> None:
    """One JSON document on stdout (non-finite numbers as null), the ``--json`` output of every command."""
    from evofusion.viz.page import to_json

    print(json.dumps(json.loads(to_json(doc)), indent=1), flush=True)


def _result_doc(kind: str, run: Any, result: Any, html: Path) -> dict[str, Any]:
    """What a finished run of any kind hands a script: kind, run directory, report path and the
    result (a search: its Pareto front, most accurate first, and the fine-tuned finals)."""
    doc: dict[str, Any] = {"kind": kind, "run_dir": str(run.store.dir), "report": str(html)}
    if kind == "search":
        doc["pareto"] = run.best_candidates()
        doc["finals"] = result
    else:
        doc["result"] = result
    return doc


def _merge_top(run_dir: Path, nested: dict[str, Any], section: str | None = None) -> dict[str, Any]:
    """Turn nested overrides into top-level keys merged with the config in effect (of ``section``
    for runs whose config nests there: ``weights``, ``grow``)."""
    from evofusion.store import RunStore

    if not nested:
        return {}
    with RunStore(run_dir, lock=False, readonly=True) as s:
        old = s.config()
    old = old[section] if section else old
    res = {}
    for k, v in nested.items():
        res[k] = {**old[k], **v} if isinstance(v, dict) and isinstance(old.get(k), dict) else v
    return res


def _print_table(store: Any) -> None:
    from evofusion.viz import report_data

    data = report_data(store)
    finals = {f["id"]: f for f in data["finals"]}
    t = Table(title=f"Pareto front ({len(data['pareto'])} of {len(data['candidates'])} candidates)")
    for col in ["id", "gen", *data["objectives"], "test acc (final)"]:
        t.add_column(col, justify="right")
    cands = {c["id"]: c for c in data["candidates"]}
    for cid in sorted(data["pareto"], key=lambda i: cands[i]["objectives"].get("params", 0)):
        c = cands[cid]
        vals = [f"{c['objectives'][n]:.4f}" if n == "accuracy" else f"{c['objectives'][n]:.4g}"
                for n in data["objectives"]]
        fin = f"{finals[cid]['test_accuracy']:.4f}" if cid in finals else ""
        t.add_row(str(cid), str(c["generation"]), *vals, fin)
    out.print(t)


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directory; more than one: the first is drawn and "
                                                   "all are compared (Pareto fronts, hypervolume)")],
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON document for scripts")] = False,
    html: Annotated[bool, typer.Option("--html/--no-html", help="write the HTML report")] = True,
    out_file: Annotated[Path | None, typer.Option("--out", help="HTML file (RUN_DIR/report.html; "
                                                  "comparison.html for several runs)")] = None,
    inline: Annotated[bool, typer.Option("--inline", help="plotly.js inside the page (one 5 MB file) instead "
                                         "of plotly.min.js beside it")] = False,
) -> None:
    """Pareto table in the terminal (or --json), and report.html (several runs: a comparison page)."""
    from evofusion.store import RunStore
    from evofusion.viz import report_data, write_html_report

    try:
        run_dir, others = run_dirs[0], run_dirs[1:]
        for d in others:  # each must be a readable run before anything is written
            RunStore(d, lock=False, readonly=True).close()
        with RunStore(run_dir, lock=False, readonly=True) as store:
            if as_json:
                data = report_data(store)
                if others:
                    from evofusion.viz.report import comparison_data

                    data["compare"] = comparison_data(run_dirs)
                print(json.dumps(data, indent=1))
            else:
                _print_table(store)
                if store.get_meta("prune_report"):
                    from evofusion.viz.prune_section import prune_markdown

                    print(prune_markdown(store.get_meta("prune_report")), flush=True)
            if html:
                target = out_file or (Path("comparison.html") if others else Path(run_dir) / "report.html")
                written = write_html_report(store, target, compare=others, inline=inline)
                if not as_json:
                    console.print(f"report: {written}")
    except EvoFusionError as e:
        _fail(e)


@app.command()
def dashboard(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directory; more than one: the first is drawn and "
                                                   "all are compared")],
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0 picks a free port")] = 8765,
    host: Annotated[str, typer.Option("--host", help="interface to listen on")] = "127.0.0.1",
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="open the page in a browser")] = True,
    poll: Annotated[float, typer.Option("--poll", min=0.2, max=3600, help="page refresh, seconds")] = 2.0,
) -> None:
    """Live dashboard of a run (also while its search is running), until Ctrl-C."""
    from evofusion.viz.dashboard import serve_dashboard

    try:
        run_dir = run_dirs[0]
        server = serve_dashboard(run_dir, host=host, port=port, poll_seconds=poll, compare=run_dirs[1:])
    except EvoFusionError as e:
        _fail(e)
    except OSError as e:
        _fail(EvoFusionError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror or e})"))
    print(f"EvoFusion dashboard of {run_dir}: {server.url}  (Ctrl-C stops it)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    _stop_on_signals()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM end a foreground server cleanly (exit 0, socket closed). Installed
    explicitly: a process started in the background by a non-interactive shell inherits SIGINT as
    *ignored*, and Python then installs no KeyboardInterrupt handler, so `kill -INT` did nothing."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


@app.command()
def export(
    run_dir: Path,
    candidate: Annotated[str, typer.Option("--candidate", help="best | candidate id | pareto (every Pareto-optimal "
                                           "candidate, one folder each: OUT/candidate-ID)")] = "best",
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("student"),
    onnx: Annotated[bool, typer.Option("--onnx", help="also write student.onnx (parity-checked; needs "
                                       "pip install 'evofusion\\[export]')")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="also write student.int8.onnx (implies --onnx)")] = False,
    calibration: Annotated[int, typer.Option("--calibration", min=1, help="training images that calibrate "
                                             "int8")] = 512,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="folder with the run's data files")] = None,
    force: Annotated[bool, typer.Option("--force", help="replace a non-empty --out folder whole")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write genome.json + weights.safetensors + card.json + student.pt (TorchScript that takes [0, 1]
    images, normalization inside; needs only PyTorch); load with evofusion.load_student(DIR).

    The bundle is built in a temporary folder and renamed into place: nothing is left behind on an
    error, and a non-empty --out is refused unless --force.

    With --onnx / --int8 (student.onnx, student.uint8.onnx for 8-bit data, student.int8.onnx: raw
    images in, normalization inside) the card also gets the ONNX parity error, sizes, accuracy
    measured with ONNX Runtime on raw validation images (test split separately), ORT latency and FLOPs.
    """
    from evofusion.export.run_export import export_candidate
    from evofusion.store import RunStore

    try:
        with RunStore(run_dir, lock=False, readonly=True) as store:
            if candidate == "pareto":
                done = _export_pareto(store, out_dir, onnx, int8, calibration, data_dir, force, _logger(quiet or as_json))
                if as_json:
                    _print_json({"candidates": [c for c, _ in done], "out": [str(p) for _, p in done]})
                elif not quiet:
                    out.print(f"exported {len(done)} Pareto-optimal candidates to {out_dir}")
                return
            if candidate == "best":
                cid: int | None = None
            else:
                try:
                    cid = int(candidate)
                except ValueError:
                    raise EvoFusionError(f"--candidate: expected 'best' or an integer id, got {candidate!r}") from None
            if onnx or int8:
                _logger(quiet or as_json)("exporting: ONNX parity check" + (", int8 calibration and accuracy"
                                                                           if int8 else "") + " ...")
            cid, path = export_candidate(store, cid, out_dir, onnx=onnx, int8=int8, calibration=calibration,
                                         data_dir=data_dir, force=force)
        if as_json:
            _print_json({"candidate": cid, "out": str(path), "card": json.loads((Path(path) / "card.json").read_text())})
        elif not quiet:
            out.print(f"exported candidate {cid} to {path}")
    except EvoFusionError as e:
        _fail(e)


def _export_pareto(store: Any, out_dir: Path, onnx: bool, int8: bool, calibration: int, data_dir: str | None,
                   force: bool, log: Any) -> list[tuple[int, Path]]:
    """``export --candidate pareto``: every non-dominated COMPLETE candidate to OUT/candidate-ID."""
    from evofusion.export.run_export import export_candidate
    from evofusion.objectives.base import ObjectiveSet
    from evofusion.objectives.selection import pareto_ids

    o = store.config()["objectives"]
    ids = pareto_ids(store, ObjectiveSet.from_names(o["names"], o.get("constraints", [])))
    if not ids:
        raise EvoFusionError(f"{store.dir} has no COMPLETE candidate to export")
    done = []
    for cid in ids:
        log(f"exporting candidate {cid} ({len(done) + 1}/{len(ids)})")
        done.append(export_candidate(store, cid, out_dir / f"candidate-{cid}", onnx=onnx, int8=int8,
                                     calibration=calibration, data_dir=data_dir, force=force))
    return done


@app.command()
def evaluate(
    student: Annotated[Path, typer.Argument(help="exported student folder")],
    data: Annotated[str | None, typer.Option("--data", help="data set (default: the one in the student's "
                                             "card.json)")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    split: Annotated[str, typer.Option("--split", help="test | val")] = "test",
    latency: Annotated[bool, typer.Option("--latency/--no-latency", help="measure CPU latency")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Accuracy, params, FLOPs and CPU latency of an exported student on a data set."""
    from evofusion.data import load_dataset
    from evofusion.distill import evaluate_accuracy
    from evofusion.engine.evaluator import static_metrics
    from evofusion.export import load_student
    from evofusion.objectives.metrics import measure_latency_ms

    try:
        if split not in ("test", "val"):
            raise EvoFusionError(f"--split: must be test or val, got {split!r}")
        model = load_student(student)
        if data is None:
            data = _card_dataset(student)
        splits = load_dataset(data, data_dir=data_dir)
        x, y = getattr(splits, split).tensors()
        g = model.genome
        shape = (g.in_channels, g.input_size, g.input_size)
        if tuple(x.shape[1:]) != shape:
            raise EvoFusionError(f"--data: {data} has inputs {tuple(x.shape[1:])}, the student expects {shape}")
        res = {"accuracy": evaluate_accuracy(model, x, y), "split": split, **static_metrics(model, shape)}
        if latency:
            res.update(measure_latency_ms(model, shape))
        res["data"] = data
        if as_json:
            _print_json(res)
        else:
            _print_mapping(f"{student} on {data} ({split})", res)
    except EvoFusionError as e:
        _fail(e)


def _print_mapping(title: str, values: dict[str, Any]) -> None:
    """A two-column Rich table of scalar results (the terminal form of a command's --json)."""
    t = Table(title=title, show_header=False)
    for k, v in values.items():
        if not isinstance(v, dict | list):
            t.add_row(str(k), f"{v:.4f}" if isinstance(v, float) and abs(v) < 100 else
                      f"{v:,.0f}" if isinstance(v, float) else str(v))
    out.print(t)


def _card_dataset(student: Path) -> str:
    """The data set an exported student was trained on, from its card.json."""
    try:
        card = json.loads((student / "card.json").read_text())
    except (OSError, ValueError):
        card = {}
    name = card.get("dataset") or (card.get("data") or {}).get("name") if isinstance(card, dict) else None
    if not isinstance(name, str):
        raise EvoFusionError(f"--data: {student}/card.json does not name the data set; pass --data NAME")
    return name


@teacher_app.command("train")
def teacher_train(
    arch: Annotated[str, typer.Option("--arch", help="small_cnn | simple_cnn | resnet18 | googlenet")],
    data: Annotated[str, typer.Option("--data")],
    out_dir: Annotated[Path, typer.Option("--out")],
    epochs: Annotated[int, typer.Option("--epochs", min=1, max=500)] = 8,
    width: Annotated[float, typer.Option("--width", min=0.01, max=4)] = 1.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    force: Annotated[bool, typer.Option("--force", help="replace a non-empty --out folder")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a zoo teacher and save weights.safetensors + teacher.json."""
    from evofusion.data import check_splits, load_dataset
    from evofusion.teachers import list_teachers, train_teacher

    try:
        if arch not in list_teachers():
            raise EvoFusionError(f"--arch: unknown teacher {arch!r}; valid: {', '.join(list_teachers())}")
        if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not force:
            raise EvoFusionError(f"--out: {out_dir} exists and is not empty (a teacher there would be overwritten); "
                                 "choose a new folder or pass --force")
        splits = load_dataset(data, data_dir=data_dir, limit=limit)
        check_splits(splits)
        log = _logger(quiet or as_json)
        log(f"training {arch} (width {width}) on {data} for {epochs} epochs ...")
        meta = train_teacher(arch, splits, epochs, out_dir, width=width, seed=seed,
                             progress=lambda step, acc: log(f"step {step}: val acc {acc:.4f}"))
        if as_json:
            _print_json(meta)
        else:
            _print_mapping(f"teacher {arch} in {out_dir}", meta)
    except EvoFusionError as e:
        _fail(e)


@app.command("evolve-weights")
def evolve_weights(
    strategy: Annotated[str | None, typer.Option("--strategy", show_default=_d("strategy", 'weights'), help="de | shade | cade | es | evolver")] = None,
    data: Annotated[str | None, typer.Option("--data", show_default=_d("data.name", 'weights'), help="digits | fashion-mnist | mnist | cifar10")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="folder with the data files")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="use only N training examples")] = None,
    population: Annotated[int | None, typer.Option("--population", show_default=_d("population", 'weights'), help="P: ancestors / offspring")] = None,
    generations: Annotated[int | None, typer.Option("--generations", show_default=_d("generations", 'weights'))] = None,
    seed: Annotated[int | None, typer.Option("--seed", show_default=_d("seed", 'weights'))] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="new run directory")] = None,
    resume_dir: Annotated[Path | None, typer.Option("--resume", hidden=True, help="= evofusion resume DIR")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE, e.g. params.F=0.7")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Evolve the weights of a fixed student from back-propagation ancestors (DE family, Evolver, ES)."""
    from evofusion.config import set_dotted
    from evofusion.weights.study import WeightStudy

    quiet = quiet or as_json
    log = _logger(quiet)
    try:
        if resume_dir is not None:  # an alias of `evofusion resume DIR`
            log(f"note: `evolve-weights --resume DIR` is `evofusion resume {resume_dir}`")
            study = WeightStudy.resume(resume_dir, log=log, callbacks=_progress(quiet),
                                       overrides={"generations": generations} if generations else None)
        else:
            flags = {"strategy": strategy, "data.name": data, "data.data_dir": data_dir, "data.limit": limit,
                     "population": population, "generations": generations, "seed": seed}
            d: dict[str, Any] = {}
            for k, v in {**{k: v for k, v in flags.items() if v is not None}, **_parse_set(set_ or [])}.items():
                set_dotted(d, k, v)
            study = WeightStudy.create(d, run_dir or Path("runs/weights"), log=log, callbacks=_progress(quiet))
        _complete("weights", study, quiet, as_json)
    except EvoFusionError as e:
        _fail(e)


@app.command()
def distill(
    genome: Annotated[Path, typer.Option("--genome", help="genome JSON file (or an exported student folder)")],
    config: Annotated[Path | None, typer.Option("--config", help="YAML config: its data, teacher, distill sections")] = None,
    data: Annotated[str | None, typer.Option("--data", help="digits | fashion-mnist | mnist | cifar10")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="use only N training examples")] = None,
    teacher: Annotated[str | None, typer.Option("--teacher", help="teacher dir or weights file")] = None,
    feature_kd: Annotated[list[str] | None, typer.Option(
        "--feature-kd", help="feature term, e.g. teacher_tap=features.conv4,student_tap=depth0.5,loss=mse,weight=1 "
        "(repeat for several; keys as in distill.features)")] = None,
    extra_teacher: Annotated[list[str] | None, typer.Option("--extra-teacher", help="another logit teacher dir")] = None,
    teacher_weighting: Annotated[str | None, typer.Option("--teacher-weighting", help="fixed | confidence")] = None,
    text_teacher: Annotated[str | None, typer.Option("--text-teacher", help="align with class-name embeddings: wordllama")] = None,
    text_weight: Annotated[float | None, typer.Option("--text-weight")] = None,
    text_loss: Annotated[str | None, typer.Option("--text-loss", help="contrastive | cosine")] = None,
    steps: Annotated[int | None, typer.Option("--steps")] = None,
    epochs: Annotated[float | None, typer.Option("--epochs", help="instead of --steps")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out_dir: Annotated[Path | None, typer.Option("--out", help="write genome.json + weights.safetensors here")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE config override")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Distil one genome from the teacher, optionally with feature KD (CDKA), several teachers or a text teacher."""
    from evofusion.engine.distill_run import distill_genome
    from evofusion.engine.feature_kd import parse_feature_option
    from evofusion.genome import genome_from_json

    try:
        gpath = genome / "genome.json" if genome.is_dir() else genome
        if not gpath.is_file():
            raise EvoFusionError(f"--genome: {gpath} does not exist")
        g = genome_from_json(gpath.read_text())
        flags = {"data.name": data, "data.data_dir": data_dir, "data.limit": limit, "teacher.path": teacher,
                 "distill.teacher_weighting": teacher_weighting}
        overrides: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
        if epochs is not None:
            overrides.update({"distill.epochs": epochs, "distill.steps": steps})
        elif steps is not None:
            overrides["distill.steps"] = steps
        if feature_kd:
            overrides["distill.features"] = [parse_feature_option(f) for f in feature_kd]
        if extra_teacher:
            overrides["distill.teachers"] = [{"path": p} for p in extra_teacher]
        if text_teacher is not None or text_weight is not None or text_loss is not None:
            tt = {"model": text_teacher or "wordllama"}
            tt.update({k: v for k, v in (("weight", text_weight), ("loss", text_loss)) if v is not None})
            overrides["distill.text_teacher"] = tt
        overrides.update(_parse_set(set_ or []))
        cfg = _search_config(config, overrides)
        res = distill_genome(g, cfg, seed=seed, out_dir=out_dir, log=_logger(quiet or as_json))
        if as_json:
            _print_json(res)
        else:
            _print_mapping(f"distilled {gpath}", res)
    except EvoFusionError as e:
        _fail(e)


@app.command()
def grow(
    data: Annotated[str | None, typer.Option("--data", show_default=_d("data.name", 'grow'), help="digits | fashion-mnist | mnist | cifar10")] = None,
    teacher: Annotated[str | None, typer.Option("--teacher", help="teacher dir or weights file (default: zoo)")] = None,
    no_teacher: Annotated[bool, typer.Option("--no-teacher", help="plain training, no KD")] = False,
    controller: Annotated[str | None, typer.Option("--controller", show_default=_d("controller.name", 'grow'), help="evolutionary | rl | random")] = None,
    steps: Annotated[int | None, typer.Option("--steps", show_default=_d("growth.steps", 'grow'), help="training steps (the budget)")] = None,
    grow_every: Annotated[int | None, typer.Option("--grow-every", show_default=_d("growth.grow_every", 'grow'), help="steps between growth events")] = None,
    max_params: Annotated[int | None, typer.Option("--max-params", show_default=_d("growth.max_params", 'grow'), help="largest student allowed")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="use only N training examples")] = None,
    seed: Annotated[int | None, typer.Option("--seed", show_default=_d("seed", 'grow'))] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML grow config")] = None,
    run_dir: Annotated[Path, typer.Option("--run-dir", help="new run directory (or the one to resume)")] = Path(
        "runs/grow"),
    resume: Annotated[bool, typer.Option("--resume", hidden=True, help="= evofusion resume RUN_DIR")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE, e.g. growth.patience=3")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Grow a tiny student online while it distills: the controller applies function-preserving morphs."""

    from evofusion.growth import GrowthRun

    quiet = quiet or as_json
    log = _logger(quiet)
    try:
        if resume:  # an alias of `evofusion resume DIR`
            log(f"note: `grow --resume` is `evofusion resume {run_dir}`")
            run = GrowthRun.resume(run_dir, log=log, callbacks=_progress(quiet))
        else:
            flags = {"data.name": data, "teacher.path": teacher, "controller.name": controller,
                     "growth.steps": steps, "growth.grow_every": grow_every, "growth.max_params": max_params,
                     "data.limit": limit, "seed": seed}
            d = _kind_config(config, flags, no_teacher, set_)
            run = GrowthRun.create(d, run_dir, log=log, callbacks=_progress(quiet))
        _complete("grow", run, quiet, as_json)
    except EvoFusionError as e:
        _fail(e)


@app.command(name="supernet")
def supernet_cmd(
    data: Annotated[str | None, typer.Option("--data", show_default=_d("data.name", "supernet"), help="digits | fashion-mnist | mnist | cifar10")] = None,
    teacher: Annotated[str | None, typer.Option("--teacher", help="teacher dir or weights file (default: zoo)")] = None,
    no_teacher: Annotated[bool, typer.Option("--no-teacher", help="in-place distillation only (no external teacher)")] = False,
    steps: Annotated[int | None, typer.Option("--steps", show_default=_d("supernet.steps", "supernet"), help="sandwich steps (the budget)")] = None,
    max_seconds: Annotated[float | None, typer.Option("--max-seconds", help="wall-clock budget of the training: the step "
                                                      "count (at most --steps) is planned to end inside it")] = None,
    max_widths: Annotated[str | None, typer.Option("--max-widths", show_default=_d("space.max_widths", "supernet"), help="largest width of each stage, e.g. 16,32,64")] = None,
    max_params: Annotated[int | None, typer.Option("--max-params", help="random subnets drawn with <= N params (the device budget)")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="use only N training examples")] = None,
    seed: Annotated[int | None, typer.Option("--seed", show_default=_d("seed", "supernet"))] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML supernet config")] = None,
    run_dir: Annotated[Path, typer.Option("--run-dir", help="new run directory")] = Path("runs/supernet"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE, e.g. supernet.random_subnets=3")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a weight-sharing supernet with KD (sandwich rule, in-place distillation); then search
    its subnets with `evofusion search --supernet RUN_DIR`."""
    from evofusion.supernet import SupernetRun

    quiet = quiet or as_json
    log = _logger(quiet)
    try:
        widths = None
        if max_widths is not None:
            try:
                widths = [int(v) for v in max_widths.split(",") if v.strip()]
            except ValueError:
                raise EvoFusionError(f"--max-widths: expected widths such as 16,32,64, got {max_widths!r}") from None
        flags = {"data.name": data, "teacher.path": teacher, "supernet.steps": steps, "supernet.max_seconds": max_seconds, "space.max_widths": widths,
                 "supernet.max_params": max_params, "data.limit": limit, "seed": seed}
        run = SupernetRun.create(_kind_config(config, flags, no_teacher, set_), run_dir, log=log,
                                 callbacks=_progress(quiet))
        _complete("supernet", run, quiet, as_json)
    except EvoFusionError as e:
        _fail(e)


@app.command()
def prune(
    teacher: Annotated[str | None, typer.Option("--teacher", help="teacher dir (teacher.json + weights), or the "
                                                "weights.safetensors of --teacher-module")] = None,
    teacher_module: Annotated[str | None, typer.Option("--teacher-module", help="pkg.mod:factory returning your "
                                                       "trained network's nn.Module")] = None,
    data: Annotated[str | None, typer.Option("--data", help="digits | fashion-mnist | mnist | cifar10")] = None,
    target_params: Annotated[int | None, typer.Option("--target-params", help="hard limit: params <= N")] = None,
    objectives: Annotated[str | None, typer.Option("--objectives", help="comma list, e.g. "
                                                   "accuracy,params,flops,latency_ms,compression")] = None,
    encoding: Annotated[str, typer.Option("--encoding", help="channel | block | layer")] = "channel",
    levels: Annotated[int, typer.Option("--levels", help="block: chunks per group; layer: ratio steps")] = 8,
    fill_budget: Annotated[bool | None, typer.Option("--fill-budget/--no-fill-budget", help="scale every "
                           "candidate's keep ratios up to --target-params (default: on with --encoding layer "
                           "and --target-params)")] = None,
    init: Annotated[str, typer.Option("--init", help="l1 | taylor | random: seeds the first population")] = "l1",
    strategy: Annotated[str | None, typer.Option("--strategy", help="ga | nsga2 | random | regularized")] = None,
    population: Annotated[int, typer.Option("--population")] = 8,
    generations: Annotated[int | None, typer.Option("--generations", help="default 4; with --resume: new total")] = None,
    steps: Annotated[int, typer.Option("--steps", help="KD fine-tune steps per candidate")] = 200,
    final_epochs: Annotated[float, typer.Option("--final-epochs", help="KD fine-tune of the ticket")] = 3.0,
    noise: Annotated[str, typer.Option("--noise", help="Gaussian sigmas of the robustness check")] = "0,0.1,0.2,0.3",
    max_drop: Annotated[float, typer.Option("--max-drop", min=0, max=1, help="a ticket further below the "
                                            "teacher's test accuracy is reported as no winner")] = 0.10,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="use only N training examples")] = None,
    run_dir: Annotated[Path, typer.Option("--run-dir", help="new run directory")] = Path("runs/prune"),
    resume_dir: Annotated[Path | None, typer.Option("--resume", hidden=True, help="= evofusion resume DIR")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE search-config override")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Prune a trained CNN teacher by GA / NSGA-II with KD in the loop; fine-tune the winning ticket;
    report compression %, FLOPs reduction %, accuracy, latency and noise robustness (docs/pruning.md)."""
    from evofusion.prune.cli import prune_run

    quiet = quiet or as_json
    log = _logger(quiet)
    try:
        if resume_dir is not None:
            log(f"note: `prune --resume DIR` is `evofusion resume {resume_dir}`")
        study = prune_run(teacher=teacher, data=data, target_params=target_params, objectives=objectives,
                          encoding=encoding, levels=levels, init=init, strategy=strategy, population=population,
                          generations=generations, steps=steps, final_epochs=final_epochs, noise=noise, seed=seed,
                          data_dir=data_dir, limit=limit, run_dir=run_dir, resume_dir=resume_dir,
                          overrides=_parse_set(set_ or []), log=log, callbacks=_progress(quiet),
                          max_drop=max_drop, teacher_module=teacher_module, fill_budget=fill_budget)
        _complete("prune", study, quiet, as_json)
    except EvoFusionError as e:
        _fail(e)


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Everything created by name: strategies, operators, objectives, teachers, data sets, KD losses,
    weight strategies, growth controllers, executors, trackers and run kinds."""
    import evofusion.engine.executors  # noqa: F401 - registers serial, process, ray
    import evofusion.weights  # noqa: F401 - registers every weight strategy
    from evofusion.data import dataset_names
    from evofusion.distill.features import FEATURE_LOSSES
    from evofusion.engine.executor_base import EXECUTORS
    from evofusion.engine.run import RUN_KINDS
    from evofusion.engine.trackers import TRACKERS
    from evofusion.growth.controller import CONTROLLERS
    from evofusion.objectives import KNOWN_OBJECTIVES
    from evofusion.operators import OPERATORS
    from evofusion.strategies import STRATEGIES
    from evofusion.strategies.operator_control import OPERATOR_CONTROLLERS
    from evofusion.teachers import list_teachers
    from evofusion.teachers.text import TEXT_TEACHERS
    from evofusion.weights.base import WEIGHT_STRATEGIES

    registries = {"strategies": STRATEGIES.names(), "operators": OPERATORS.names(),
                  "objectives": list(KNOWN_OBJECTIVES), "teachers": list_teachers(), "datasets": dataset_names(),
                  "feature losses": FEATURE_LOSSES.names(), "text teachers": TEXT_TEACHERS.names(),
                  "weight strategies": WEIGHT_STRATEGIES.names(), "controllers (grow)": CONTROLLERS.names(),
                  "operator controllers (search)": OPERATOR_CONTROLLERS.names(), "executors": EXECUTORS.names(),
                  "trackers": TRACKERS.names(), "run kinds": RUN_KINDS.names()}
    if as_json:
        _print_json({k: list(v) for k, v in registries.items()})
        return
    for name, items in registries.items():
        out.print(f"[bold]{name}[/]: {', '.join(items)}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted; resume with `evofusion resume RUN_DIR`")
        sys.exit(130)
