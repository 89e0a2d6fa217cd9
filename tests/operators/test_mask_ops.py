"""Mask operators on pruning genomes, with a fixed rng against hand-checked results."""

from __future__ import annotations

import numpy as np

from evofusion.genome.prune import PruneGenome
from evofusion.genome.prune_space import PruneSpace
from evofusion.operators import create_operator, operators_for

TEMPLATE = PruneGenome(teacher="t", arch="small_cnn", groups=(4, 4), genes=(1,) * 8)
SPACE = PruneSpace(template=TEMPLATE, scores=((4, 3, 2, 1), (1, 2, 3, 4)))


def test_operators_for_prune_space() -> None:
    assert set(operators_for(SPACE)) == {"mask_flip", "mask_uniform", "mask_one_point"}


def test_mask_flip_flips_and_reports() -> None:
    op = create_operator("mask_flip", SPACE, p=0.0)  # p=0: exactly one forced flip
    child, info = op.apply_with_info(TEMPLATE, rng=np.random.default_rng(0))
    (i,) = info["changed"]
    assert child.genes[i] == 0 and sum(child.genes) == 7


def test_mask_flip_layer_moves_one_level() -> None:
    t = PruneGenome(teacher="t", arch="small_cnn", groups=(4, 4), genes=(1, 4), encoding="layer", levels=4)
    op = create_operator("mask_flip", PruneSpace(template=t), p=1.0)
    child, info = op.apply_with_info(t, rng=np.random.default_rng(3))
    assert child.genes == (2, 3)  # 1 can only go up, 4 only down
    assert info["changed"] == [0, 1]


def test_crossovers() -> None:
    a = TEMPLATE
    b = TEMPLATE.with_genes([0] * 8)
    child, info = create_operator("mask_one_point", SPACE).apply_with_info(a, b, rng=np.random.default_rng(1))
    cut = info["cut"]
    assert child.genes == (1,) * cut + (0,) * (8 - cut)
    child, info = create_operator("mask_uniform", SPACE).apply_with_info(a, b, rng=np.random.default_rng(1))
    assert 8 - sum(child.genes) == info["from_b"]


def test_importance_seeded_samples_keep_top_channels() -> None:
    space = PruneSpace(template=TEMPLATE, scores=((4, 3, 2, 1), (1, 2, 3, 4)), importance_fraction=1.0,
                       keep_range=(0.5, 0.5), noise=0.0)
    g = space.sample(np.random.default_rng(0))
    assert g.genes == (1, 1, 0, 0, 0, 0, 1, 1)
    assert space.contains(g) and not space.contains(g.with_genes([1] * 8).__class__(
        teacher="other", arch="small_cnn", groups=(4, 4), genes=(1,) * 8))
