"""Feature-distillation losses and multi-teacher logit KD.

Every feature loss takes the (adapted) student features ``s`` and the teacher features ``t`` of one
batch (same leading dimension) and keyword extras it may ignore (``labels``, ``table``,
``temperature``), and returns a scalar that is 0 when the student matches the teacher. Losses are
created by name from ``FEATURE_LOSSES`` (``mse``, ``cosine``, ``cka``, ``at``, ``contrastive``).

* ``mse``: FitNets hints (Romero et al., 2015), mean squared error.
* ``cosine``: 1 - cosine similarity of the flattened features, averaged over the batch.
* ``cka``: 1 - linear CKA (Kornblith et al., 2019, "Similarity of Neural Network Representations
  Revisited") between the batch's flattened features; any widths, no adapter needed.
* ``at``: attention transfer (Zagoruyko & Komodakis, 2017, "Paying More Attention to Attention"):
  squared distance of the L2-normalised attention maps ``mean_c(f^2)``, averaged as in the authors'
  code; their beta = 1000 is the loss weight to start from.
* ``contrastive``: CLIP-style (Radford et al., 2021) cross-entropy of the cosine similarities of the
  student features to every row of ``table`` (e.g. class-name embeddings), target = the label's row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from evofusion.registry import Registry
from evofusion.teachers.features import attention_map

FEATURE_LOSSES: Registry[torch.Tensor] = Registry("feature_losses")
SHAPE_FREE = ("cka", "at")  # losses that compare features of any widths without an adapter


@FEATURE_LOSSES.register("mse")
def mse_loss(s: torch.Tensor, t: torch.Tensor, **_: Any) -> torch.Tensor:
    return F.mse_loss(s.float(), t.float())


@FEATURE_LOSSES.register("cosine")
def cosine_loss(s: torch.Tensor, t: torch.Tensor, **_: Any) -> torch.Tensor:
    return (1.0 - F.cosine_similarity(s.flatten(1).float(), t.flatten(1).float(), dim=1, eps=1e-8)).mean()


def linear_cka(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Linear CKA in [0, 1] between ``(N, Da)`` and ``(N, Db)`` features (rows = examples)."""
    a = a.flatten(1).float()
    b = b.flatten(1).float()
    a = a - a.mean(0, keepdim=True)
    b = b - b.mean(0, keepdim=True)
    cross = (b.T @ a).pow(2).sum()
    return cross / ((a.T @ a).pow(2).sum().sqrt() * (b.T @ b).pow(2).sum().sqrt() + eps)


@FEATURE_LOSSES.register("cka")
def cka_loss(s: torch.Tensor, t: torch.Tensor, **_: Any) -> torch.Tensor:
    return 1.0 - linear_cka(s, t)


def normalized_attention(f: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Flattened, L2-normalised attention of a map ``(N, C, H, W)`` (or of an attention map already
    ``(N, 1, H, W)``), average-pooled / interpolated to ``size`` first when given."""
    from evofusion.distill.adapters import resize_map

    a = f.float() if f.shape[1] == 1 else attention_map(f)
    if size is not None:
        a = resize_map(a, size)
    return F.normalize(a.flatten(1), dim=1)


@FEATURE_LOSSES.register("at")
def at_loss(s: torch.Tensor, t: torch.Tensor, **_: Any) -> torch.Tensor:
    """``s``: the student's map (any channels); ``t``: the teacher's map or its cached attention map."""
    size = (t.shape[2], t.shape[3])
    return (normalized_attention(s, size) - normalized_attention(t)).pow(2).mean()


@FEATURE_LOSSES.register("contrastive")
def contrastive_loss(s: torch.Tensor, t: torch.Tensor, *, labels: torch.Tensor | None = None,
                     table: torch.Tensor | None = None, temperature: float = 0.1, **_: Any) -> torch.Tensor:
    """Cross-entropy over cosine similarities to every row of ``table`` (``t`` is unused)."""
    if labels is None or table is None:
        raise ValueError("the contrastive loss needs labels and a class table (a text teacher)")
    logits = F.normalize(s.flatten(1).float(), dim=1) @ F.normalize(table.float(), dim=1).T
    return F.cross_entropy(logits / temperature, labels)


def multi_teacher_kd(student_logits: torch.Tensor, targets: torch.Tensor, teachers: Sequence[torch.Tensor],
                     weights: Sequence[float], weighting: str = "fixed", alpha: float = 0.5,
                     temperature: float = 4.0) -> torch.Tensor:
    """``alpha * CE + (1 - alpha) * T^2 * sum_k w_ik KL(teacher_k/T || student/T)`` averaged over the batch.

    ``fixed``: ``w_ik = weights[k] / sum(weights)``. ``confidence``: per example, ``w_ik`` is
    proportional to ``weights[k]`` times teacher k's max softmax probability on that example, so the
    most confident teacher leads on each example. With one teacher both equal :func:`kd_loss`.
    """
    ce = F.cross_entropy(student_logits, targets)
    if not teachers or alpha >= 1.0:
        return ce
    t = temperature
    log_s = F.log_softmax(student_logits / t, dim=1)
    w = torch.tensor(list(weights), dtype=torch.float32, device=student_logits.device)
    if weighting == "confidence":
        conf = torch.stack([F.softmax(tl.float(), dim=1).amax(1) for tl in teachers], dim=1)  # (N, K)
        wk = conf * w
    elif weighting == "fixed":
        wk = w.expand(len(student_logits), -1)
    else:
        raise ValueError(f"weighting must be fixed or confidence, got {weighting!r}")
    wk = wk / wk.sum(1, keepdim=True)
    kl = torch.stack([F.kl_div(log_s, F.log_softmax(tl.float() / t, dim=1), reduction="none",
                               log_target=True).sum(1) for tl in teachers], dim=1)  # (N, K)
    return alpha * ce + (1.0 - alpha) * t * t * (wk * kl).sum(1).mean()
