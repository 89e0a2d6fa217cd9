"""Weight-sharing supernets: train once with KD (sandwich rule, in-place distillation), search the
subnets with any strategy, extract the winners as plain students (docs/supernet.md)."""

from evofusion.supernet.elastic import Supernet, SupernetSpec, recalibrate_bn
from evofusion.supernet.train import SupernetConfig, SupernetRun, train_supernet, validate_supernet_config

__all__ = ["Supernet", "SupernetConfig", "SupernetRun", "SupernetSpec", "recalibrate_bn", "train_supernet",
           "validate_supernet_config"]
