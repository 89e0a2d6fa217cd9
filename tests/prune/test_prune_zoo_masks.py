"""Every zoo teacher, pruned by a random mask: runs forward and backward, has the parameter count the
mask implies, and reloads from the run store (genome JSON + safetensors) and from an export bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from evofusion.engine.evaluator import save_weights
from evofusion.export import export_student, load_student
from evofusion.genome import build, genome_from_dict
from evofusion.genome.prune import PruneGenome
from evofusion.prune.graph import prunable_groups
from evofusion.prune.model import build_pruned, teacher_arch
from evofusion.store import RunStore
from evofusion.teachers import list_teachers

WIDTH = {"small_cnn": 0.5, "simple_cnn": 0.5, "resnet18": 0.25, "googlenet": 0.125}


def _implied_params(arch: str, kept: dict[str, int], size: int = 28) -> int | None:
    """Parameter count computed by hand from the kept channels of each group (by root layer)."""
    if arch == "small_cnn":
        k = [kept[f"features.conv{i}.conv"] for i in range(1, 6)]
        chain = [1, *k]
        return sum(9 * a * b + 2 * b for a, b in zip(chain, chain[1:], strict=False)) + 10 * k[4] + 10
    if arch == "simple_cnn":
        c1, c2, h = kept["features.conv1"], kept["features.conv2"], kept["classifier.fc1"]
        side = size // 4
        return (25 * c1 + c1) + (25 * c1 * c2 + c2) + (c2 * side * side * h + h) + (10 * h + 10)
    if arch == "resnet18":
        streams = [kept["conv1"], kept["layer2.0.downsample.0"], kept["layer3.0.downsample.0"],
                   kept["layer4.0.downsample.0"]]
        total = 9 * streams[0] + 2 * streams[0]
        c_in = streams[0]
        for li, s in enumerate(streams):
            for b in range(2):
                m = kept[f"layer{li + 1}.{b}.conv1"]
                total += 9 * c_in * m + 2 * m + 9 * m * s + 2 * s
                if b == 0 and li > 0:
                    total += c_in * s + 2 * s
                c_in = s
        return total + 10 * streams[3] + 10
    return None  # googlenet: checked layer by layer below


def _random_genome(arch: str, rng: np.random.Generator) -> PruneGenome:
    template = PruneGenome(teacher="test", arch=arch, width=WIDTH[arch], groups=(1,), genes=(1,))
    groups = prunable_groups(teacher_arch(template), (1, 28, 28), 10)
    sizes = tuple(g.size for g in groups)
    genes = tuple(int(b) for b in rng.random(sum(sizes)) < 0.5)
    return PruneGenome(teacher="test", arch=arch, width=WIDTH[arch], groups=sizes, genes=genes)


@pytest.mark.parametrize("arch", list_teachers())
def test_random_mask_forward_backward_params_reload(arch: str, tmp_path: Path) -> None:
    assert arch in WIDTH, f"add {arch} to this test"
    rng = np.random.default_rng(0)
    genome = _random_genome(arch, rng)
    teacher = teacher_arch(genome)
    full = sum(p.numel() for p in teacher.parameters())
    model = build_pruned(genome, teacher.state_dict())
    n = sum(p.numel() for p in model.parameters())
    assert n < full

    groups = prunable_groups(teacher, (1, 28, 28), 10)
    masks = genome.keep_masks()
    kept = {g.root: int(m.sum()) for g, m in zip(groups, masks, strict=True)}
    implied = _implied_params(arch, kept)
    if implied is not None:
        assert n == implied
    mods = dict(model.named_modules())
    for g in groups:  # every group's root layer is physically narrower
        root = mods[g.root]
        width = root.out_channels if isinstance(root, torch.nn.Conv2d) else root.out_features
        assert width == kept[g.root]

    x = torch.randn(3, 1, 28, 28)
    model.train()
    out = model(x)
    assert out.shape == (3, 10)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

    # the surviving channels keep the teacher's weights: the first root's kept filters match
    first = groups[0]
    w_t = dict(teacher.named_modules())[first.root].weight
    assert torch.equal(mods[first.root].weight.detach(), w_t.detach()[torch.from_numpy(masks[0])])

    # reload from the store: genome JSON + safetensors -> rebuild arch, apply mask, load state dict
    model.eval()
    expected = model(x)
    with RunStore(tmp_path / "run", create=True) as store:
        store.add_candidate(0, 0, genome.to_dict(), genome.hash, [], None, {}, 0)
        whash = save_weights(model, store.weights_path(0))
        store.finish_candidate(0, "COMPLETE", {"params": float(n)}, weights_hash=whash,
                               weights_file=str(store.weights_path(0)))
        row = store.candidate(0)
        assert row is not None and row["weights_file"] == "weights/0.safetensors"  # relative to the run
        weights = store.resolve(row["weights_file"])
    again = build(genome_from_dict(row["genome"]))
    again.load_state_dict(load_file(weights))
    again.eval()
    torch.testing.assert_close(again(x), expected)
    bundle = export_student(row["genome"], weights, tmp_path / "bundle")
    torch.testing.assert_close(load_student(bundle)(x), expected)


def test_mismatched_layout_is_a_named_error() -> None:
    from evofusion.errors import GenomeError

    g = PruneGenome(teacher="t", arch="small_cnn", width=0.5, groups=(3, 3), genes=(1,) * 6)
    with pytest.raises(GenomeError) as e:
        build(g)
    assert e.value.field == "groups"
