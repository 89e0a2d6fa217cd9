"""The library side of ``evofusion prune``: flags -> configs -> PruneStudy -> report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evofusion.config import set_dotted, validate_config
from evofusion.errors import ConfigError
from evofusion.prune.config import validate_prune_config
from evofusion.prune.study import PruneStudy


def _noise(text: str) -> list[float]:
    try:
        levels = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError("noise", f"expected comma-separated numbers such as 0,0.1,0.2, got {text!r}") from None
    if not levels or any(v < 0 for v in levels):
        raise ConfigError("noise", f"needs at least one sigma >= 0, got {text!r}")
    return levels


def run_prune(*, log: Any = print, **kw: Any) -> str:
    """Create (or resume) a pruning run (``prune_run``), search, fine-tune the winning ticket, write
    report.html. Returns the markdown summary (the seed's table and the robustness check)."""
    from evofusion.viz import write_html_report
    from evofusion.viz.prune_section import prune_markdown

    study = prune_run(log=log, **kw)
    try:
        rep = study.complete(log=log)
        html = write_html_report(study.store)
        log(f"report: {html}")
        return prune_markdown(rep)
    finally:
        study.close()


def prune_run(*, teacher: str | None, data: str | None, target_params: int | None, objectives: str | None,
              encoding: str, levels: int, init: str, strategy: str | None, population: int, generations: int | None,
              steps: int, final_epochs: float, noise: str, seed: int, data_dir: str | None, limit: int | None,
              run_dir: Path, resume_dir: Path | None, overrides: dict[str, Any], log: Any = print,
              callbacks: Sequence[Any] = (), max_drop: float = 0.10, teacher_module: str | None = None,
              fill_budget: bool | None = None) -> PruneStudy:
    """The pruning run the flags describe, created (or resumed from ``resume_dir``), not yet run.

    Defaults: with ``target_params`` a single-objective GA (accuracy under ``params <= N``);
    without, NSGA-II on ``--objectives`` (default accuracy,params) and the winner is the most
    compressed candidate within 0.5 pp of the most accurate.
    """
    if resume_dir is not None:
        study = PruneStudy.resume(resume_dir, overrides={"generations": generations} if generations else None,
                                  log=log, callbacks=callbacks)
    else:
        if teacher is None:
            raise ConfigError("teacher", "--teacher DIR is required (a directory from `evofusion teacher train`, "
                              "or the .safetensors weights of a --teacher-module network)")
        if data is None:
            raise ConfigError("data", "--data NAME is required (the data the teacher was trained on)")
        if target_params is not None and target_params < 1:
            raise ConfigError("target_params", f"must be >= 1, got {target_params}")
        names = ([o.strip() for o in objectives.split(",") if o.strip()] if objectives
                 else ["accuracy"] if target_params is not None else ["accuracy", "params"])
        if "accuracy" not in names:
            raise ConfigError("objectives", "must include accuracy (the KD-fine-tuned candidate's score)")
        d: dict[str, Any] = {}
        flat = {"data.name": data, "data.data_dir": data_dir, "data.limit": limit, "seed": seed,
                "generations": generations or 4, "strategy.name": strategy or ("ga" if len(names) == 1 else "nsga2"),
                "strategy.population": population, "objectives.names": names, "distill.steps": steps,
                "distill.patience": 2, "final.epochs": final_epochs, "final.patience": 2, "inherit_weights": False,
                **({"strategy.params": {"elitism": 2}} if (strategy or "ga") == "ga" and len(names) == 1 else {})}
        for k, v in {**flat, **overrides}.items():
            if v is not None:
                set_dotted(d, k, v)
        cfg = validate_config(d)
        pcfg = validate_prune_config({"teacher": teacher, "teacher_module": teacher_module, "encoding": encoding, "levels": levels, "init": init,
                                      "target_params": target_params, "noise_levels": _noise(noise),
                                      "max_drop": max_drop, "fill_budget": fill_budget})
        study = PruneStudy.create(cfg, run_dir, prune=pcfg, log=log, callbacks=callbacks)
    return study
