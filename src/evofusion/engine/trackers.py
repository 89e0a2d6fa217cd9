"""Experiment trackers: TensorBoard and MLflow as study callbacks.

Both libraries are optional (``pip install 'evofusion[trackers]'``) and imported only when a tracker
is created. Every tracker logs the same numbers:

* per candidate, each finite objective value (``accuracy``, ``params``, ``flops`` ...) and the
  evaluation ``seconds``, at step = candidate id;
* per generation (step = generation index), ``generation/best_accuracy`` and
  ``generation/mean_accuracy`` over the generation's COMPLETE candidates, ``generation/failed`` (the
  number of FAILED ones) and ``generation/hypervolume`` of every finite (accuracy, params) point the
  run has found so far (see ``generation_metrics``).

Create by name with ``TRACKERS.create("tensorboard")`` / ``TRACKERS.create("mlflow")``: with no
arguments, logs go under the study's run directory (``RUN_DIR/tensorboard``,
``sqlite:///RUN_DIR/mlflow.db``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evofusion.engine.callbacks import Callback
from evofusion.errors import EvoFusionError
from evofusion.objectives.base import ObjectiveSet
from evofusion.objectives.pareto import hypervolume
from evofusion.registry import Registry

TRACKERS: Registry[Callback] = Registry("trackers")

# Hypervolume reference point in (accuracy, params): accuracy 0 and 10M parameters, fixed so that the
# value is comparable across generations and runs; points with more parameters add nothing.
HV_REF_PARAMS = 1e7
_HV_OBJECTIVES = ObjectiveSet.from_names(["accuracy", "params"])


class MissingExtraError(EvoFusionError, ImportError):
    """An optional dependency is not installed; the message names the pip extra that provides it."""


def _require(module: str, what: str) -> None:
    """Fail early (before any run directory exists) when ``module`` is not importable."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(f"{what} needs the '{module}' package; install it with "
                                "`pip install 'evofusion[trackers]'`")


@contextlib.contextmanager
def _quiet_logger(name: str, level: int = logging.WARNING) -> Iterator[None]:
    """Raise a logger's level for a block (MLflow announces creating its database tables at INFO on
    stderr, which would break ``--quiet``)."""
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(max(level, old))
    try:
        yield
    finally:
        logger.setLevel(old)


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def candidate_metrics(outcome: Any) -> dict[str, float]:
    """The finite numeric objective values of one outcome, plus its evaluation ``seconds``."""
    res = {k: float(v) for k, v in (outcome.values or {}).items() if _finite(v)}
    if _finite(outcome.seconds):
        res["seconds"] = float(outcome.seconds)
    return res


def archive_hypervolume(store: Any) -> float:
    """Hypervolume of every COMPLETE candidate's finite (accuracy, params) point, minimizing
    (-accuracy, log10 params) against the reference (0, log10 ``HV_REF_PARAMS``)."""
    pts = []
    for r in store.candidates("COMPLETE"):
        v = r["objective_values"] or {}
        if _finite(v.get("accuracy")) and _finite(v.get("params")):
            pts.append({"accuracy": v["accuracy"], "params": v["params"]})
    if not pts:
        return 0.0
    return float(hypervolume(_HV_OBJECTIVES.F(pts), [0.0, math.log10(HV_REF_PARAMS)]))


def generation_metrics(study: Any, outcomes: list[Any]) -> dict[str, float]:
    """``generation/...`` summary of one finished generation (see the module docstring)."""
    accs = [o.values["accuracy"] for o in outcomes
            if o.status == "COMPLETE" and _finite((o.values or {}).get("accuracy"))]
    res = {"generation/failed": float(sum(o.status == "FAILED" for o in outcomes)),
           "generation/hypervolume": archive_hypervolume(study.store)}
    if accs:
        res["generation/best_accuracy"] = float(max(accs))
        res["generation/mean_accuracy"] = float(sum(accs) / len(accs))
    return res


def flatten_config(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"strategy.population": "8", ...}`` (lists and None as JSON text)."""
    res: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            res.update(flatten_config(v, key + "."))
        else:
            res[key] = v if isinstance(v, str) else json.dumps(v)
    return res


@TRACKERS.register("tensorboard")
class TensorBoardCallback(Callback):
    """Scalars to TensorBoard event files via ``torch.utils.tensorboard.SummaryWriter``.

    Tags: ``candidate/<value>`` (step = candidate id), ``generation/<metric>`` (step = generation),
    and the config as text (``config``) and as TensorBoard hparams. A resumed study appends a new
    event file to the same folder; TensorBoard merges them.

    Args:
        log_dir: where event files go; None means ``RUN_DIR/tensorboard`` of the study.
        flush_secs: the writer's flush period; it also flushes after every generation.
    """

    def __init__(self, log_dir: str | Path | None = None, flush_secs: int = 30):
        _require("tensorboard", "the tensorboard tracker")
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.flush_secs = flush_secs
        self.writer: Any = None

    def on_study_start(self, study: Any) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams
        except ImportError as e:
            raise MissingExtraError(f"the tensorboard tracker cannot import tensorboard ({e}); install it "
                                    "with `pip install 'evofusion[trackers]'`") from e
        log_dir = self.log_dir or Path(study.store.dir) / "tensorboard"
        self.writer = SummaryWriter(str(log_dir), flush_secs=self.flush_secs)
        cfg = study.cfg.to_dict()
        self.writer.add_text("config", "```json\n" + json.dumps(cfg, indent=1) + "\n```", study.generation)
        if study.generation == 0:  # the hparams plugin keeps one session per folder
            for summary in hparams(flatten_config(cfg), {"generation/best_accuracy": 0.0,
                                                         "generation/hypervolume": 0.0}):
                self.writer.file_writer.add_summary(summary)

    def on_candidate_end(self, study: Any, outcome: Any) -> None:
        for k, v in candidate_metrics(outcome).items():
            self.writer.add_scalar(f"candidate/{k}", v, outcome.candidate_id)

    def on_generation_end(self, study: Any, generation: int, outcomes: list[Any]) -> None:
        for k, v in generation_metrics(study, outcomes).items():
            self.writer.add_scalar(k, v, generation)
        self.writer.flush()

    def on_study_end(self, study: Any) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None


@TRACKERS.register("mlflow")
class MLflowCallback(Callback):
    """One MLflow run per study, through ``MlflowClient`` (no global active run).

    The run gets the flattened config as params, the candidate values as metrics named after the
    value (``accuracy``, ``params`` ... at step = candidate id), the ``generation/...`` metrics at
    step = generation, and tags ``evofusion.run_dir``, ``evofusion.status`` (RUNNING, FINISHED),
    ``evofusion.candidates`` (counts by status) and ``failed.<id>`` (the reason of each FAILED
    candidate). A resumed study continues the same MLflow run: its id is in ``state_dict()``, and
    without one the run tagged with the same run directory is picked up. A config value changed on
    resume (MLflow params are immutable) is recorded as the tag ``resumed.<key>``.

    Args:
        tracking_uri: MLflow backend; None means ``sqlite:///RUN_DIR/mlflow.db`` (nothing leaves the
            machine). Artifacts, if any, go to ``RUN_DIR/mlartifacts`` for a default URI.
        experiment: experiment name, created when missing.
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str = "evofusion"):
        _require("mlflow", "the mlflow tracker")
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_id: str | None = None
        self.client: Any = None

    def state_dict(self) -> dict[str, Any]:
        return {"mlflow_run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Study matches callback states by position; ignore a state that is not ours
        if isinstance(state, dict) and state.get("mlflow_run_id"):
            self.run_id = state["mlflow_run_id"]

    def on_study_start(self, study: Any) -> None:
        with _quiet_logger("mlflow.store.db.utils"), _quiet_logger("alembic"):
            self._start(study)

    def _start(self, study: Any) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as e:
            raise MissingExtraError(f"the mlflow tracker cannot import mlflow ({e}); install it with "
                                    "`pip install 'evofusion[trackers]'`") from e
        run_dir = Path(study.store.dir).resolve()
        uri = self.tracking_uri or f"sqlite:///{run_dir / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            art = (run_dir / "mlartifacts").as_uri() if self.tracking_uri is None else None
            exp_id = self.client.create_experiment(self.experiment, artifact_location=art)
        else:
            exp_id = exp.experiment_id
        if self.run_id is None and "'" not in str(run_dir):
            found = self.client.search_runs([exp_id], f"tags.`evofusion.run_dir` = '{run_dir}'",
                                            max_results=1, order_by=["attributes.start_time DESC"])
            if found:
                self.run_id = found[0].info.run_id
        if self.run_id is None:
            run = self.client.create_run(exp_id, run_name=run_dir.name,
                                         tags={"evofusion.run_dir": str(run_dir)})
            self.run_id = run.info.run_id
            old: dict[str, str] = {}
        else:
            self.client.update_run(self.run_id, status="RUNNING")
            old = self.client.get_run(self.run_id).data.params
        self._log_params(flatten_config(study.cfg.to_dict()), old)
        self.client.set_tag(self.run_id, "evofusion.status", "RUNNING")

    def _log_params(self, params: dict[str, str], old: dict[str, str]) -> None:
        from mlflow.entities import Param, RunTag

        new = [Param(k, v[:6000]) for k, v in params.items() if k not in old]
        changed = [RunTag(f"resumed.{k}", v[:5000]) for k, v in params.items() if k in old and old[k] != v[:6000]]
        for i in range(0, len(new), 100):  # MLflow's per-batch param limit
            self.client.log_batch(self.run_id, params=new[i:i + 100])
        if changed:
            self.client.log_batch(self.run_id, tags=changed)

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, ts, step) for k, v in metrics.items()])

    def on_candidate_end(self, study: Any, outcome: Any) -> None:
        self._log_metrics(candidate_metrics(outcome), outcome.candidate_id)
        if outcome.status == "FAILED":
            self.client.set_tag(self.run_id, f"failed.{outcome.candidate_id}", str(outcome.reason or "")[:5000])

    def on_generation_end(self, study: Any, generation: int, outcomes: list[Any]) -> None:
        self._log_metrics(generation_metrics(study, outcomes), generation)
        counts = {s: study.store.count(s) for s in ("COMPLETE", "FAILED")}
        self.client.set_tag(self.run_id, "evofusion.candidates",
                            " ".join(f"{k.lower()}={v}" for k, v in counts.items()))

    def on_study_end(self, study: Any) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_tag(self.run_id, "evofusion.status", "FINISHED")
            self.client.set_terminated(self.run_id, "FINISHED")


__all__ = ["HV_REF_PARAMS", "TRACKERS", "MLflowCallback", "MissingExtraError", "TensorBoardCallback",
           "archive_hypervolume", "candidate_metrics", "flatten_config", "generation_metrics"]
