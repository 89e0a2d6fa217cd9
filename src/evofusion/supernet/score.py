"""Scoring subnets from a trained supernet's shared weights (a search with ``supernet: {run: DIR}``).

A search over a supernet is an ordinary search (any strategy, the run store, resume, constraints,
finals, export), except that a candidate is not trained: the evaluator cuts the subnet out of the
shared weights (``Supernet.extract``), recomputes its BatchNorm statistics on a few fixed training
batches (``recalibrate_bn``) and measures its validation accuracy. The extracted weights are the
candidate's weights file, so the Pareto winners fine-tune and export like any candidate.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from evofusion.errors import ConfigError
from evofusion.supernet.elastic import Supernet, SupernetSpec, recalibrate_bn
from evofusion.supernet.train import SUPERNET_SPEC, calibration_batches


def supernet_summary(run_dir: str | Path) -> dict[str, Any]:
    """The ``supernet.json`` a finished supernet run wrote; ConfigError naming ``supernet.run`` otherwise."""
    d = Path(run_dir)
    f = d / SUPERNET_SPEC
    if not f.exists():
        hint = (f"it is a run that has not finished: `evofusion resume {d}`" if (d / "run.db").exists()
                else "train one with `evofusion supernet CONFIG --run-dir DIR`")
        raise ConfigError("supernet.run", f"{d} holds no trained supernet ({SUPERNET_SPEC} missing); {hint}")
    try:
        summary = json.loads(f.read_text())
        SupernetSpec.from_dict(summary["spec"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError("supernet.run", f"{f} is not a supernet summary ({type(e).__name__}: {e})") from None
    if not (d / summary["weights"]).exists():
        raise ConfigError("supernet.run", f"{d / summary['weights']} (the supernet's weights) is missing")
    return summary


@functools.lru_cache(maxsize=2)
def load_supernet(weights: str, weights_hash: str, spec_json: str) -> Supernet:
    """The supernet of ``spec_json`` with the weights file loaded (once per process; the hash keys the cache)."""
    net = Supernet(SupernetSpec.from_dict(json.loads(spec_json)))
    net.load_state_dict(load_file(weights))
    net.eval()
    return net


def score_subnet(ref: dict[str, Any], genome: Any, arrays: dict[str, torch.Tensor],
                 device: torch.device) -> tuple[torch.nn.Module, float]:
    """(the extracted, BN-recalibrated subnet, its validation accuracy) for a search job; ``ref`` is the
    context's ``supernet`` entry (weights, weights_hash, spec, calib_batches, batch_size, val_size)."""
    from evofusion.distill.loop import evaluate_accuracy

    net = load_supernet(ref["weights"], ref["weights_hash"], json.dumps(ref["spec"], sort_keys=True))
    model = net.extract(genome).to(device)
    recalibrate_bn(model, _calib(arrays["train_x"], int(ref["calib_batches"]), int(ref["batch_size"])))
    vx, vy = arrays["val_x"], arrays["val_y"]
    n = len(vy) if ref.get("val_size") is None else min(int(ref["val_size"]), len(vy))
    return model, evaluate_accuracy(model, vx[:n], vy[:n])


_CALIB: dict[tuple[int, int, int], list[torch.Tensor]] = {}


def _calib(x: torch.Tensor, n: int, batch_size: int) -> list[torch.Tensor]:
    key = (id(x), n, batch_size)
    if key not in _CALIB:
        _CALIB.clear()
        _CALIB[key] = calibration_batches(x, n, batch_size)
    return _CALIB[key]


def search_setup(cfg: Any, splits: Any, space: Any, log: Any = print) -> tuple[Any, dict[str, Any]]:
    """The search space of a supernet search (the supernet's subnets: its stage count, width /
    depth / kernel choices and fixed activation, pool and head; ``space.*`` of the config is not
    used) and the context entry the evaluator scores with. ConfigError names ``supernet.run``."""
    import dataclasses

    d = Path(cfg.run)
    summary = supernet_summary(d)
    spec = SupernetSpec.from_dict(summary["spec"])
    task = (spec.in_channels, spec.input_size, spec.num_classes)
    if task != (splits.in_channels, splits.input_size, splits.num_classes):
        raise ConfigError("supernet.run", f"the supernet was trained for (channels, size, classes) {task}, the data "
                          f"have {(splits.in_channels, splits.input_size, splits.num_classes)}")
    if summary.get("data_fingerprint") not in (None, splits.fingerprint()):
        raise ConfigError("supernet.run", f"the supernet in {d} was trained on other data (fingerprint "
                          f"{summary['data_fingerprint']}, this search's {splits.fingerprint()}): its training "
                          "set may hold this search's validation examples; search it with the data it was "
                          "trained on (data.name, data.limit, data.val_fraction, data.seed)")
    space = dataclasses.replace(
        space, encoding="student", min_stages=spec.n_stages, max_stages=spec.n_stages, widths=spec.widths,
        min_depth=spec.min_depth, max_depth=spec.max_depth, kernels=spec.kernels, activations=(spec.activation,),
        pools=(spec.pool,), allow_skip=False, head_kinds=(spec.head_kind,), head_hidden=(spec.head_hidden,),
        admissible=spec.contains)
    log(f"searching the subnets of the supernet in {d} ({spec.n_stages} stages, widths up to "
        f"{list(spec.max_widths)}, depth {spec.min_depth}-{spec.max_depth}, kernels {list(spec.kernels)}); "
        "space.* of the config is not used")
    ref = {"weights": str((d / summary["weights"]).resolve()), "weights_hash": summary["weights_hash"],
           "spec": summary["spec"], "batch_size": int(summary["batch_size"]),
           "calib_batches": int(cfg.calib_batches or summary["calib_batches"]), "val_size": cfg.val_size}
    return space, ref


class SupernetScorer:
    """The ``supernet`` entry of ``engine.evaluator.SCORERS``: a search's set-up and per-candidate score."""

    setup = staticmethod(search_setup)
    score = staticmethod(score_subnet)


SCORER = SupernetScorer()
