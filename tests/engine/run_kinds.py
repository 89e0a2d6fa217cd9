"""One tiny run of each kind (search, prune, grow, weights) behind one interface, so the lifecycle
fault battery is parametrized over every run kind. Also used by the SIGKILL driver subprocess."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evofusion.engine.run import Run, resume_run
from evofusion.store import RunStore
from tests.conftest import tiny_config

# run kinds, plus a search with multi-fidelity rungs and Lamarckian starts (kill mid-rung, resume)
KINDS = ["search", "search_mf", "prune", "grow", "weights", "supernet", "search_supernet"]
STORE_KIND = {"search_mf": "search", "search_supernet": "search"}  # the run kind each one stores
# checkpoints of a whole run
STEPS = {"search": 3, "search_mf": 3, "prune": 3, "grow": 4, "weights": 3, "supernet": 4, "search_supernet": 3}
MF = {"scheduler": {"rungs": [6, 18, 54], "eta": 2}, "lamarckian": True, "controller": {"name": "bandit"}}
QUIET = {"log": lambda *_: None}


def grow_config() -> dict[str, Any]:
    return {"seed": 3, "data": {"name": "digits", "limit": 300}, "teacher": {"enabled": False},
            "train": {"batch_size": 32},
            "growth": {"steps": 40, "grow_every": 10, "eval_size": 60, "horizon": 2, "max_params": 5000,
                       "calib_size": 64},
            "controller": {"name": "rl"}}


def supernet_config() -> dict[str, Any]:
    return {"seed": 3, "data": {"name": "digits", "limit": 300}, "teacher": {"enabled": False},
            "space": {"max_widths": [4, 8], "widths": [2, 4, 6, 8]}, "train": {"batch_size": 32},
            "supernet": {"steps": 40, "checkpoint_every": 10, "eval_size": 60, "max_params": 1500}}


def trained_supernet(folder: Path) -> Path:
    """A finished tiny supernet run (the one ``search_supernet`` searches), trained once per folder."""
    from evofusion.supernet import train_supernet

    d = folder / "supernet"
    if not (d / "supernet.json").exists():
        import shutil

        shutil.rmtree(d, ignore_errors=True)
        train_supernet(supernet_config(), d, **QUIET)
    return d


def weights_config() -> dict[str, Any]:
    return {"strategy": "de", "population": 6, "generations": 3, "seed": 3,
            "data": {"name": "digits", "limit": 300}, "student": {"stages": [{"width": 4}, {"width": 8}]},
            "ancestors": {"epochs": 1}, "fitness": {"batch": 64}}


def prune_configs(teacher_dir: str) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = {"seed": 3, "generations": 3, "data": {"name": "digits", "limit": 300},
           "distill": {"steps": 8, "batch_size": 64, "patience": 2}, "final": {"epochs": 1},
           "strategy": {"name": "ga", "population": 4, "params": {"elitism": 1}},
           "objectives": {"names": ["accuracy"]}, "inherit_weights": False}
    return cfg, {"teacher": teacher_dir, "target_params": 1200, "eval_every": 4}


def train_prune_teacher(folder: Path) -> Path:
    from evofusion.data import load_dataset
    from evofusion.teachers import train_teacher

    d = folder / "small_cnn"
    if not (d / "teacher.json").exists():
        train_teacher("small_cnn", load_dataset("digits", limit=300), 6, d, width=0.5, seed=0)
    return d


def create(kind: str, run_dir: Path, teacher_dir: Path | None = None) -> Run:
    if kind in ("search", "search_mf"):
        from evofusion import Study

        return Study.create(tiny_config(generations=3, **(MF if kind == "search_mf" else {})), run_dir, **QUIET)
    if kind == "prune":
        from evofusion.prune import PruneStudy

        assert teacher_dir is not None
        cfg, prune = prune_configs(str(teacher_dir))
        return PruneStudy.create(cfg, run_dir, prune=prune, **QUIET)
    if kind == "grow":
        from evofusion.growth import GrowthRun

        return GrowthRun.create(grow_config(), run_dir, **QUIET)
    if kind == "supernet":
        from evofusion.supernet import SupernetRun

        return SupernetRun.create(supernet_config(), run_dir, **QUIET)
    if kind == "search_supernet":
        from evofusion import Study

        assert teacher_dir is not None
        sn = trained_supernet(teacher_dir.parent)
        return Study.create(tiny_config(generations=3, supernet={"run": str(sn), "val_size": 100},
                                        **{"objectives.constraints": ["params <= 1500"]}), run_dir, **QUIET)
    from evofusion.weights import WeightStudy

    return WeightStudy.create(weights_config(), run_dir, **QUIET)


def resume(run_dir: Path) -> Run:
    return resume_run(run_dir, **QUIET)


def open_or_create(kind: str, run_dir: Path, teacher_dir: Path | None = None) -> Run:
    """What a user does after a kill: resume when the directory holds a run, else start it again."""
    return resume(run_dir) if (run_dir / "run.db").exists() else create(kind, run_dir, teacher_dir)


def advance(run: Run, kind: str, n: int) -> None:
    """Run ``n`` more checkpointed steps (generations, growth intervals)."""
    if kind in ("search", "search_mf", "prune", "supernet", "search_supernet"):
        for _ in range(n):
            if not run.done():
                run.step()
    elif kind == "grow":
        g = run.cfg.growth  # type: ignore[attr-defined]
        run.run(until_step=min(g.steps - 1, run.trainer.step + n * g.grow_every))  # type: ignore[attr-defined]
    else:
        run.optimize(until=run.generation + n)  # type: ignore[attr-defined]


def finish(run: Run, kind: str) -> None:
    """Run to the end, including the kind's final step: the one ``Run.complete`` of every kind."""
    run.complete(log=QUIET["log"])


def results(run_dir: Path) -> tuple[list[tuple], list[tuple]]:
    """What a run ends with: every candidate (id, genome hash, status, objective values, weights hash)
    and every final (id, val and test accuracy)."""
    with RunStore(run_dir, lock=False, readonly=True) as s:
        rows = [(r["id"], r["genome_hash"], r["status"], r["objective_values"], r["weights_hash"])
                for r in s.candidates()]
        finals = [(f["candidate_id"], f["val_accuracy"], f["test_accuracy"]) for f in s.finals()]
    return rows, finals
