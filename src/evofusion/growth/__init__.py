"""Online growth: the meta-controller (MCAE) applies function-preserving morphs (FPMM) to a live
student while it distills from a teacher."""

from evofusion.growth.controller import CONTROLLERS, Controller, Edit, create_controller
from evofusion.growth.grow import GrowConfig, GrowthRun, grow, validate_grow_config
from evofusion.growth.trainer import GrowthTrainer, carry_optimizer

__all__ = ["CONTROLLERS", "Controller", "Edit", "GrowConfig", "GrowthRun", "GrowthTrainer", "carry_optimizer",
           "create_controller", "grow", "validate_grow_config"]
