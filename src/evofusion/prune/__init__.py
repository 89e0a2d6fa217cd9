"""Pruning a trained CNN by evolution with knowledge distillation in the loop (the KD + GA pruning seed).

Channel groups and physical pruning come from Torch-Pruning's dependency graph (``graph``); a
``PruneGenome`` (``evofusion.genome.prune``) says which channels survive; ``PruneStudy`` searches
with the project's Study, strategies and store; ``baselines`` holds the uniform-L1 / random-mask /
from-scratch comparisons.
"""

from evofusion.prune.config import PruneConfig, validate_prune_config
from evofusion.prune.graph import GroupInfo, apply_masks, group_importance, prunable_groups
from evofusion.prune.model import build_pruned
from evofusion.prune.robust import noise_accuracy
from evofusion.prune.study import PruneStudy, setup_prune

__all__ = ["GroupInfo", "PruneConfig", "PruneStudy", "apply_masks", "build_pruned", "group_importance",
           "noise_accuracy", "prunable_groups", "setup_prune", "validate_prune_config"]
