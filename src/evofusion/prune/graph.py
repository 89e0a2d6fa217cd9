"""Prunable channel groups and physical pruning, on Torch-Pruning's dependency graph.

Torch-Pruning (Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023) traces a model
once and knows which layers are coupled: a residual add ties the output channels of every conv that
feeds it, a concatenation maps a branch's channels to an offset in the next layer's inputs, a
depthwise conv ties its input and output channels. Each *group* is one set of channels that must be
removed together; this module lists the groups of any CNN in a fixed order and removes channels
physically (the result is a smaller ``nn.Module``, not zeroed weights). Dependency tracing is
Torch-Pruning's; nothing here re-implements it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from evofusion.errors import ConfigError

ROOT_TYPES = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class GroupInfo:
    """One prunable channel group: the module whose output channels root it, their count, the names
    of every module the group touches (for reports) and ``multiple``: the kept channel count must be
    a multiple of it (the GroupNorm groups and grouped-conv groups among the members; depthwise convs
    follow their group whole through Torch-Pruning and need nothing)."""

    root: str
    size: int
    members: tuple[str, ...]
    multiple: int = 1


def _multiple(modules: Sequence[nn.Module], size: int) -> int:
    """The lcm of the group counts that constrain a channel group of ``size`` channels."""
    m = 1
    for mod in modules:
        g = 1
        if isinstance(mod, nn.GroupNorm):
            g = mod.num_groups
        elif isinstance(mod, nn.Conv2d) and mod.groups > 1 and not (mod.groups == mod.in_channels
                                                                   and mod.groups == mod.out_channels):
            g = mod.groups  # a grouped (not depthwise) conv: its channel counts stay divisible by groups
        m = math.lcm(m, g)
    return m if m <= size and size % m == 0 else 1


def round_masks(groups: Sequence[GroupInfo], masks: Sequence[np.ndarray],
                rankings: Sequence[Sequence[int]] | None = None) -> list[np.ndarray]:
    """Each mask with the fewest extra channels kept (most important first, by ``rankings``, else by
    index) so its kept count is a multiple of the group's ``multiple``: a genome that would leave a
    GroupNorm 7 channels for 4 groups keeps 8, and no candidate fails for it."""
    out = []
    for g, (info, keep) in enumerate(zip(groups, masks, strict=True)):
        keep = np.array(keep, dtype=bool)
        short = (-int(keep.sum())) % info.multiple
        if short:
            order = np.arange(info.size) if rankings is None else np.asarray(rankings[g])
            for i in order:
                if short == 0:
                    break
                if not keep[i]:
                    keep[i], short = True, short - 1
        out.append(keep)
    return out


def output_layer(model: nn.Module, num_classes: int) -> str:
    """Name of the classifier layer whose outputs must never be pruned: the last Linear (else Conv2d)
    with ``num_classes`` outputs, in module order.

    Raises:
        ConfigError: no such layer (pass ``ignored=`` names explicitly).
    """
    last = None
    for name, m in model.named_modules():
        if (isinstance(m, nn.Linear) and m.out_features == num_classes) or \
                (isinstance(m, nn.Conv2d) and m.out_channels == num_classes):
            last = name
    if last is None:
        raise ConfigError("ignored", f"found no output layer with {num_classes} outputs; name the layers "
                          "whose outputs must stay whole")
    return last


def _dependency_graph(model: nn.Module, input_shape: Sequence[int]) -> tp.DependencyGraph:
    was_training = model.training
    model.eval()
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *input_shape))
    model.train(was_training)
    return dg


def _root_fn(module: nn.Module):  # noqa: ANN202 - torch-pruning's pruning functions are untyped
    return tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels


def prunable_groups(model: nn.Module, input_shape: Sequence[int], num_classes: int,
                    ignored: Sequence[str] | None = None) -> list[GroupInfo]:
    """The prunable channel groups of ``model``, ordered by their root module's position.

    Args:
        input_shape: ``(C, H, W)`` of one example.
        ignored: modules whose output channels stay whole; default: the output layer.
    """
    names = {m: n for n, m in model.named_modules()}
    order = {n: i for i, n in enumerate(names.values())}
    ignored = list(ignored) if ignored is not None else [output_layer(model, num_classes)]
    mods = dict(model.named_modules())
    missing = [n for n in ignored if n not in mods]
    if missing:
        raise ConfigError("ignored", f"no module named {missing[0]!r} in the model")
    dg = _dependency_graph(model, input_shape)
    out = []
    for group in dg.get_all_groups(ignored_layers=[mods[n] for n in ignored], root_module_types=ROOT_TYPES):
        root = group.items[0].dep.target.module
        if root not in names:
            continue
        touched = {it.dep.target.module for it in group.items if it.dep.target.module in names}
        members = sorted((names[m] for m in touched), key=order.__getitem__)
        size = len(group.items[0].idxs)
        out.append(GroupInfo(names[root], size, tuple(members), _multiple(list(touched), size)))
    return sorted(out, key=lambda g: order[g.root])


def apply_masks(model: nn.Module, groups: Sequence[GroupInfo], masks: Sequence[np.ndarray],
                input_shape: Sequence[int]) -> nn.Module:
    """Remove, in place, every channel whose mask entry is False; returns ``model`` (now smaller).

    ``masks[g]`` is a boolean array of ``groups[g].size`` entries with at least one True.
    """
    if len(groups) != len(masks):
        raise ConfigError("masks", f"need one mask per group ({len(groups)}), got {len(masks)}")
    mods = dict(model.named_modules())
    dg = _dependency_graph(model, input_shape)
    for info, keep in zip(groups, masks, strict=True):
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (info.size,) or not keep.any():
            raise ConfigError("masks", f"group {info.root}: mask must have {info.size} entries with at least "
                              f"one kept, got shape {keep.shape} with {int(keep.sum())} kept")
        remove = np.flatnonzero(~keep).tolist()
        if remove:
            root = mods[info.root]
            dg.get_pruning_group(root, _root_fn(root), idxs=remove).prune(record_history=False)
    return model


def group_importance(model: nn.Module, groups: Sequence[GroupInfo], input_shape: Sequence[int],
                     method: str = "l1", batches: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()
                     ) -> list[np.ndarray]:
    """Per-channel importance of every group, higher = more important, comparable across groups
    (Torch-Pruning's group importance, mean-normalized per group).

    ``l1``: group L1 magnitude of the weights (Li et al., "Pruning Filters for Efficient ConvNets").
    ``taylor``: first-order Taylor |w * dL/dw| (Molchanov et al., CVPR 2019), from the cross-entropy
    gradients of ``batches`` (``(x, y)`` pairs, required). The model's weights are not changed; its
    gradients are cleared afterwards.
    """
    if method == "l1":
        imp = tp.importance.GroupMagnitudeImportance(p=1)
    elif method == "taylor":
        if not batches:
            raise ConfigError("init", "taylor importance needs data batches")
        imp = tp.importance.GroupTaylorImportance()
    else:
        raise ConfigError("init", f"importance must be l1 or taylor, got {method!r}")
    mods = dict(model.named_modules())
    dg = _dependency_graph(model, input_shape)
    was_training = model.training
    if method == "taylor":
        model.eval()
        model.zero_grad(set_to_none=True)
        for x, y in batches:
            nn.functional.cross_entropy(model(x), y).backward()
    out = []
    with torch.no_grad():
        for info in groups:
            root = mods[info.root]
            group = dg.get_pruning_group(root, _root_fn(root), idxs=list(range(info.size)))
            scores = imp(group)
            out.append(np.zeros(info.size) if scores is None else scores.detach().cpu().double().numpy())
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return out


def rankings(scores: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Channel indices of each group, most important first (ties by index)."""
    return [np.argsort(-np.asarray(s), kind="stable") for s in scores]
