"""Distillation: KD losses and the one training loop."""

from evofusion.distill.loop import TrainConfig, TrainReport, evaluate_accuracy, predict_logits, train
from evofusion.distill.losses import KD_LOSSES, kd_loss

__all__ = ["KD_LOSSES", "TrainConfig", "TrainReport", "evaluate_accuracy", "kd_loss", "predict_logits", "train"]
