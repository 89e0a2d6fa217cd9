"""A pruning genome becomes a module: rebuild the teacher's architecture, (optionally) load the
teacher's weights, remove the channels the genome drops. Reloading a stored pruned student is the
same call without the teacher's weights, followed by ``load_state_dict`` (channel counts, hence
shapes, never depend on which channels were kept)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from evofusion.errors import GenomeError
from evofusion.genome.prune import PruneGenome
from evofusion.prune.graph import GroupInfo, apply_masks, prunable_groups, round_masks
from evofusion.seeding import torch_seeded
from evofusion.teachers.zoo import build_teacher


def input_shape(genome: PruneGenome) -> tuple[int, int, int]:
    return (genome.in_channels, genome.input_size, genome.input_size)


def teacher_arch(genome: PruneGenome) -> nn.Module:
    """The unpruned architecture (weights from a fixed seed; the global RNG is left untouched)."""
    with torch_seeded(0):
        return build_teacher(genome.arch, in_channels=genome.in_channels, num_classes=genome.num_classes,
                             input_size=genome.input_size, width=genome.width)


def groups_of(model: nn.Module, genome: PruneGenome) -> list[GroupInfo]:
    groups = prunable_groups(model, input_shape(genome), genome.num_classes)
    sizes = tuple(g.size for g in groups)
    if sizes != genome.groups:
        raise GenomeError("groups", f"the genome's groups {list(genome.groups)} do not match {genome.arch} "
                          f"(width {genome.width}): {list(sizes)}")
    return groups


def build_pruned(genome: PruneGenome, teacher_state: Mapping[str, torch.Tensor] | None = None,
                 rankings: Sequence[Sequence[int]] | None = None) -> nn.Module:
    """The physically pruned network ``genome`` describes.

    Args:
        teacher_state: the teacher's state dict, loaded before pruning (the surviving channels keep
            their trained weights); None = fixed-seed initial weights (to load a stored student).
        rankings: per-group channel order, most important first (see ``PruneGenome.keep_masks``).
    """
    model = teacher_arch(genome)
    if teacher_state is not None:
        model.load_state_dict(teacher_state)
    groups = groups_of(model, genome)
    masks = round_masks(groups, genome.keep_masks(rankings), rankings)
    return apply_masks(model, groups, masks, input_shape(genome))


def kept_channels(genome: PruneGenome, groups: Sequence[GroupInfo] | None = None) -> list[int]:
    """Channels kept per group (after rounding to the groups' multiples, when ``groups`` are given)."""
    masks = genome.keep_masks()
    return [int(np.sum(m)) for m in (round_masks(groups, masks) if groups is not None else masks)]
