"""Pruning a user's network (import path): GroupNorm groups and depthwise convs never make a
candidate fail, and `evofusion prune --teacher-module` runs end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from evofusion.cli import app
from evofusion.genome.prune import PruneGenome
from evofusion.prune.graph import prunable_groups, round_masks
from evofusion.prune.model import build_pruned, teacher_arch
from evofusion.store import RunStore
from evofusion.teachers import list_teachers

ARCH = "benchmarks.user_net:mobile_gn"
WIDTH = {"small_cnn": 0.5, "simple_cnn": 0.5, "resnet18": 0.25, "googlenet": 0.125}


def _template(arch: str, size: int = 28) -> PruneGenome:
    return PruneGenome(teacher="t", arch=arch, width=WIDTH.get(arch, 1.0), groups=(1,), genes=(1,), input_size=size)


def test_groupnorm_groups_are_constraints_of_their_channel_groups() -> None:
    groups = prunable_groups(teacher_arch(_template(ARCH)), (1, 28, 28), 10)
    # the residual streams (stem + block1; down + block2 + the MLP's output) each hold GroupNorm(4, .)
    streams = [g for g in groups if any(".gn" in m for m in g.members)]
    assert len(streams) == 2 and all(g.multiple == 4 for g in streams)
    assert {"block1.dw", "block2.dw"} <= {m for g in streams for m in g.members}  # depthwise follows its group
    hidden = next(g for g in groups if g.root == "mlp.1")
    assert hidden.multiple == 1 and hidden.size == 64  # the MLP's hidden layer: no constraint


def test_round_masks_keeps_the_fewest_extra_channels() -> None:
    groups = prunable_groups(teacher_arch(_template(ARCH)), (1, 28, 28), 10)
    g = next(x for x in groups if x.multiple == 4)
    keep = np.zeros(g.size, dtype=bool)
    keep[[5, 9, 30]] = True  # 3 kept -> 4, the most important missing one added
    ranking = [np.arange(x.size)[::-1] for x in groups]
    (out,) = round_masks([g], [keep], [ranking[groups.index(g)]])
    assert out.sum() == 4 and out[[5, 9, 30]].all() and out[g.size - 1]


@pytest.mark.parametrize("arch", [*list_teachers(), ARCH])
def test_random_masks_never_fail_for_group_constraints(arch: str) -> None:
    rng = np.random.default_rng(0)
    sizes = tuple(g.size for g in prunable_groups(teacher_arch(_template(arch)), (1, 28, 28), 10))
    for _ in range(12):
        genes = tuple(int(b) for b in rng.random(sum(sizes)) < rng.uniform(0.05, 0.9))
        g = PruneGenome(teacher="t", arch=arch, width=WIDTH.get(arch, 1.0), groups=sizes, genes=genes)
        model = build_pruned(g).eval()
        out = model(torch.randn(2, 1, 28, 28))  # raised "divisible by num_groups" before the rounding
        assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_cli_prunes_a_user_network_by_import_path(tmp_path: Path) -> None:
    from benchmarks.user_net import MobileGN
    from evofusion.data import load_dataset
    from evofusion.distill import TrainConfig, train

    splits = load_dataset("digits", limit=400)
    x, y = splits.train.tensors()
    model = MobileGN(c=16, hidden=32)
    torch.manual_seed(0)
    train(model, x, y, TrainConfig(steps=60, batch_size=64))
    w = tmp_path / "net.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(w))
    (tmp_path / "nets.py").write_text("from benchmarks.user_net import MobileGN\n\n\ndef small():\n"
                                      "    return MobileGN(c=16, hidden=32)\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        r = CliRunner().invoke(app, ["prune", "--teacher-module", "nets:small", "--teacher", str(w), "--data", "digits",
                                     "--limit", "400", "--population", "6", "--generations", "2", "--steps", "20",
                                     "--final-epochs", "1", "--run-dir", str(tmp_path / "run"), "--quiet"])
    finally:
        sys.path.remove(str(tmp_path))
    assert r.exit_code == 0, r.output
    with RunStore(tmp_path / "run", lock=False, readonly=True) as store:
        rows = store.candidates()
        assert rows and all(c["status"] != "FAILED" for c in rows), [c["reason"] for c in rows]
        assert rows[0]["genome"]["arch"] == "nets:small"
    r = CliRunner().invoke(app, ["prune", "--teacher-module", "nets:small", "--teacher", str(tmp_path / "missing"),
                                 "--data", "digits", "--run-dir", str(tmp_path / "run2")])
    assert r.exit_code == 2 and "teacher" in r.output
