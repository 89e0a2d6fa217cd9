"""Settings of a pruning search that the general search config does not have."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evofusion.config import config_error


class PruneConfig(BaseModel):
    """What to prune and how to encode, seed, score and report it (units and ranges in comments)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher: str  # teacher directory (teacher.json + weights.safetensors), e.g. from `evofusion teacher train`
    # or a user network by import path ("pkg.mod:factory"); then `teacher` is its weights (.safetensors)
    teacher_module: str | None = None
    encoding: Literal["channel", "block", "layer"] = "channel"  # per-channel bits | channel blocks | layer ratios
    levels: int = Field(8, ge=1, le=1024)  # block: chunks per group; layer: keep-ratio steps
    init: Literal["random", "l1", "taylor"] = "l1"  # importance that seeds the initial population
    importance_fraction: float = Field(0.5, ge=0, le=1)  # share of initial samples seeded from importance
    keep_range: tuple[float, float] | None = None  # kept share of channels per sample; None = from target
    target_params: int | None = Field(None, ge=1)  # hard limit: params <= N
    # layer encoding + target: scale every candidate's keep ratios up to the target (prune/budget.py),
    # so the GA compares allocations at equal params; None = on exactly when both are given
    fill_budget: bool | None = None
    shape_sigma: float = Field(0.3, ge=0, le=3)  # layer encoding: log-normal jitter of sampled keep ratios
    tilt_range: tuple[float, float] = (0.0, 1.0)  # layer encoding: sampled size tilt (thin layers keep more)
    tolerance: float = Field(0.005, ge=0, le=1)  # without a target: winner = most compressed within this of the best
    val_limit: int | None = Field(2000, ge=10)  # validation examples that score candidates in the search
    eval_every: int = Field(100, ge=0)  # steps between validations of the short fine-tune (early stopping)
    noise_levels: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3])  # Gaussian sigma, normalized inputs
    noise_seed: int = Field(0, ge=0)
    # a ticket more than this far below the teacher's test accuracy is reported as no winning ticket
    max_drop: float = Field(0.10, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> PruneConfig:
        if self.keep_range is not None and not 0 < self.keep_range[0] <= self.keep_range[1] <= 1:
            raise ValueError(f"keep_range must satisfy 0 < lo <= hi <= 1, got {list(self.keep_range)}")
        if self.fill_budget and (self.encoding != "layer" or self.target_params is None):
            raise ValueError("fill_budget scales per-layer keep ratios up to the parameter target: it needs "
                             "encoding 'layer' and target_params (or leave fill_budget unset)")
        if self.tilt_range[0] > self.tilt_range[1]:
            raise ValueError(f"tilt_range must be (lo, hi) with lo <= hi, got {list(self.tilt_range)}")
        if any(s < 0 for s in self.noise_levels):
            raise ValueError("noise_levels must be >= 0")
        return self

    @property
    def fills_budget(self) -> bool:
        """Whether candidates are scaled up to ``target_params`` (explicit, or auto for layer + target)."""
        if self.fill_budget is not None:
            return self.fill_budget
        return self.encoding == "layer" and self.target_params is not None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def validate_prune_config(data: dict[str, Any]) -> PruneConfig:
    """Raises ConfigError naming the first bad field (prefixed ``prune.``)."""
    try:
        return PruneConfig.model_validate(data)
    except ValidationError as e:
        err = config_error(e)
        raise type(err)(f"prune.{err.field}", str(err).split(": ", 1)[-1]) from None
