"""Knowledge-distillation losses (Hinton et al., 2015, "Distilling the Knowledge in a Neural Network")."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from evofusion.registry import Registry

KD_LOSSES: Registry = Registry("kd_losses")


@KD_LOSSES.register("kd")
def kd_loss(student_logits: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor | None,
            alpha: float = 0.5, temperature: float = 4.0) -> torch.Tensor:
    """``alpha * CE(student, y) + (1 - alpha) * T^2 * KL(teacher/T || student/T)``.

    KL uses ``batchmean`` reduction (the mathematically correct KL per sample); the ``T^2`` factor
    keeps the soft-target gradients on the same scale as the hard-label ones when T changes. With no
    teacher logits (or ``alpha == 1``) this is plain cross-entropy.
    """
    ce = F.cross_entropy(student_logits, targets)
    if teacher_logits is None or alpha >= 1.0:
        return ce
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits.float() / t, dim=1),
                  reduction="batchmean", log_target=True)
    return alpha * ce + (1.0 - alpha) * t * t * kl
