"""The search config: one YAML file (or CLI flags), validated up front with pydantic.

Unknown keys and out-of-range values are errors that name the key and the allowed range; nothing is
created on disk before the whole config has validated.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evofusion.errors import ConfigError


class Strict(BaseModel):
    """Base of every config section of every run kind: unknown keys are errors, values frozen, and no
    silent coercion (``generations: true`` or ``"8"`` is an error, not 1 or 8)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


_Strict = Strict


def check_device(device: str, field: str = "device") -> None:
    """ConfigError naming ``field`` when ``device`` cannot run here (CUDA asked for without CUDA)."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(field, f"{device!r} asked for, but this torch has no usable CUDA device "
                              f"(torch {torch.__version__}); use cpu or auto")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            raise ConfigError(field, f"{device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")


class YamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` and ``5E4`` as numbers (YAML 1.2; PyYAML's 1.1 rules
    make them strings, which the strict config would then refuse)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """YAML text (a file, a --set value) with ``YamlLoader``."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path, field: str = "config") -> dict[str, Any]:
    """A YAML mapping from ``path`` (``yaml.safe_load``); ConfigError naming ``field`` for a missing
    file, a folder, bytes that are not UTF-8 text, invalid YAML or a top level that is not a mapping."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(field, f"{p} does not exist")
    if p.is_dir():
        raise ConfigError(field, f"{p} is a folder; give a YAML file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(field, f"{p} is not UTF-8 text (byte {e.start}); save the YAML file as UTF-8") from None
    except OSError as e:
        raise ConfigError(field, f"cannot read {p}: {e.strerror or e}") from None
    if "\x00" in text:
        raise ConfigError(field, f"{p} holds NUL bytes: it is not a YAML text file")
    try:
        data = parse_yaml(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(field, f"{p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(field, f"{p} must hold a mapping at the top level")
    return data


def check_data_name(name: str, field: str = "data.name") -> None:
    """ConfigError naming ``field`` unless ``name`` is a known data set."""
    from evofusion.data import dataset_names

    if name not in dataset_names():
        raise ConfigError(field, f"unknown data set {name!r}; valid: {', '.join(dataset_names())}")


class DataConfig(Strict):
    name: str = "digits"  # digits | fashion-mnist | mnist | cifar10
    data_dir: str | None = None  # folder holding the files; else $EVOFUSION_DATA, then Debian's path
    val_fraction: float = Field(0.1, gt=0, le=0.5)  # carved from the training split
    limit: int | None = Field(None, ge=20)  # keep only this many training examples (quick runs)
    seed: int = Field(0, ge=0)  # seed of the train/val split


class TeacherConfig(Strict):
    path: str | None = None  # teacher dir (teacher.json + weights.safetensors), a weights file, a TorchScript
    # archive, an .onnx graph or an .npz of precomputed outputs (evofusion.teachers.save_teacher_outputs)
    module: str | None = None  # "pkg.mod:factory" returning an nn.Module (weights from path, a safetensors file)
    arch: str | None = None  # zoo arch: for a weights file, or the zoo teacher to train when path is unset
    width: float | None = Field(None, gt=0, le=4)  # zoo width multiplier
    epochs: int | None = Field(None, ge=1, le=500)  # epochs when the zoo teacher is trained
    enabled: bool = True  # false: plain training, no KD


class FeatureKDConfig(Strict):
    """One feature-KD term (see evofusion.distill.cdka and docs/cdka.md)."""

    teacher_tap: str = Field(min_length=1)  # teacher module name (dotted), ':in' for its input
    student_tap: str = "features"  # a tap the genome declares, or features | last_stage | depth<F> | stage<I>
    loss: str = "mse"  # mse | cosine | cka | at (a name in evofusion.distill.features.FEATURE_LOSSES)
    weight: float = Field(1.0, ge=0, le=1e6)  # at: start from 1000 (Zagoruyko & Komodakis' beta)
    adapter: Literal["auto", "conv1x1", "linear", "none"] = "auto"
    direction: Literal["student", "teacher"] = "student"  # which side the adapter maps
    reduce: Literal["pool", "attention", "gap"] | None = None  # cached form; default attention for at, else pool
    size: int = Field(4, ge=1, le=64)  # side of the cached teacher map
    teacher: int = Field(0, ge=0)  # 0 = the teacher of `teacher:`, i = distill.teachers[i - 1]


class ExtraTeacherConfig(Strict):
    """An additional logit teacher (a teacher dir or a weights file with its arch)."""

    path: str
    arch: str | None = None
    weight: float = Field(1.0, gt=0, le=1e6)


class TextTeacherConfig(Strict):
    """Cross-modal term: align the student's features with text embeddings of the class names."""

    model: str = "wordllama"  # a name in evofusion.teachers.text.TEXT_TEACHERS (loaded offline)
    student_tap: str = "features"
    loss: Literal["contrastive", "cosine"] = "contrastive"
    weight: float = Field(0.5, ge=0, le=1e6)
    temperature: float = Field(0.1, gt=0, le=10)  # contrastive only
    adapter: Literal["auto", "linear"] = "auto"
    class_names: list[str] | None = None  # in label order; default: the data set's built-in names


class RecipeConfig(Strict):
    """The KD recipe every run kind trains with (search candidates, the live grown student); it
    becomes the one runtime type, ``evofusion.distill.TrainConfig``, through ``train_config``."""

    batch_size: int = Field(128, ge=1, le=65536)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(3e-3, gt=0, le=10)  # peak learning rate
    weight_decay: float = Field(5e-4, ge=0, le=1)
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    alpha: float = Field(0.5, ge=0, le=1)  # weight of hard-label CE
    # [0.5, 100]: below ~0.5 the softened teacher is one-hot and T^2*KL underflows (no KD signal)
    temperature: float = Field(4.0, ge=0.5, le=100)

    def train_config(self, **extra: Any) -> Any:
        """This recipe (and ``extra`` TrainConfig fields) as a ``TrainConfig``."""
        from evofusion.distill.loop import TrainConfig

        fields = {k: getattr(self, k) for k in RecipeConfig.model_fields}
        return TrainConfig(**{**fields, **extra})


class DistillConfig(RecipeConfig):
    """Training of each candidate during search (low fidelity). See evofusion.distill.TrainConfig."""

    epochs: float = Field(1.0, gt=0, le=1000)  # used when steps is null
    steps: int | None = Field(200, ge=1)  # step budget per candidate (null: use epochs)
    data_fraction: float = Field(1.0, gt=0, le=1)
    patience: int = Field(0, ge=0)
    augment: Literal["none", "flip", "flip_shift"] = "none"
    # CDKA (docs/cdka.md); None = off, which keeps stored configs of older runs unchanged
    features: list[FeatureKDConfig] | None = None  # feature-KD terms
    teachers: list[ExtraTeacherConfig] | None = None  # more logit teachers besides `teacher:`
    teacher_weight: float | None = Field(None, gt=0, le=1e6)  # weight of `teacher:` among them (default 1)
    teacher_weighting: Literal["fixed", "confidence"] | None = None  # per-example by confidence; default fixed
    text_teacher: TextTeacherConfig | None = None


CDKA_KEYS = frozenset({"features", "teachers", "teacher_weight", "teacher_weighting", "text_teacher"})


class FinalConfig(Strict):
    """Full-data fine-tune of the winners after the search."""

    top_k: int = Field(1, ge=0, le=100)  # Pareto/fitness-best candidates to fine-tune; 0 = none
    epochs: float = Field(10.0, gt=0, le=1000)
    data_fraction: float = Field(1.0, gt=0, le=1)
    patience: int = Field(3, ge=0)
    lr: float | None = Field(None, gt=0, le=10)  # default: the search lr
    augment: Literal["none", "flip", "flip_shift"] = "flip"
    steps: int | None = Field(None, ge=1)  # step budget per winner that replaces epochs; null = epochs
    # wall clock of the whole fine-tune phase, shared evenly by the winners not yet fine-tuned: each
    # winner's step count is cut (from a timed probe of a few steps) so its schedule ends inside its
    # share; a winner with no time left is skipped and logged. null = no limit
    max_seconds: float | None = Field(None, gt=0)
    # how max_seconds is divided: "time" = an even share of the seconds per winner (a wide winner gets
    # fewer steps than a narrow one); "steps" = every winner's step time is probed first and all get the
    # same step count, the largest that fits (one capped at its plan leaves its surplus to the others)
    split: Literal["time", "steps"] = "time"


class SpaceConfig(Strict):
    encoding: Literal["student", "chromosome"] = "student"
    min_stages: int = Field(1, ge=1, le=12)
    max_stages: int = Field(4, ge=1, le=12)
    widths: list[int] = Field(default_factory=lambda: [4, 8, 12, 16, 24, 32, 48, 64], min_length=1)
    min_depth: int = Field(1, ge=1, le=8)
    max_depth: int = Field(3, ge=1, le=8)
    kernels: list[int] = Field(default_factory=lambda: [3, 5], min_length=1)
    activations: list[str] = Field(default_factory=lambda: ["relu", "gelu", "silu", "hardswish"], min_length=1)
    pools: list[str] = Field(default_factory=lambda: ["max", "avg", "none"], min_length=1)
    allow_skip: bool = True
    head_kinds: list[str] = Field(default_factory=lambda: ["gap", "flatten"], min_length=1)
    head_hidden: list[int] = Field(default_factory=lambda: [0, 32, 64], min_length=1)
    chromosome_blocks: int = Field(7, ge=1, le=12)
    chromosome_base_width: int = Field(4, ge=1, le=256)
    # largest student sampled or bred: an integer, "teacher" (the teacher's parameter count; no bound
    # without a teacher) or null (none). Runs stored before this key resume with null.
    max_params: int | Literal["teacher"] | None = Field("teacher")

    @field_validator("max_params")
    @classmethod
    def _max_params(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and not isinstance(v, bool) and v < 1:
            raise ValueError("must be a positive parameter count, \"teacher\" or null")
        return v

    @field_validator("widths")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        if any(not 1 <= w <= 1024 for w in v):
            raise ValueError("every width must be in [1, 1024]")
        return sorted(set(v))

    @field_validator("kernels")
    @classmethod
    def _kernels(cls, v: list[int]) -> list[int]:
        if any(k not in (1, 3, 5, 7, 9) for k in v):
            raise ValueError("kernels must be among 1, 3, 5, 7, 9")
        return sorted(set(v))

    @field_validator("activations")
    @classmethod
    def _acts(cls, v: list[str]) -> list[str]:
        from evofusion.layers.blocks import ACTIVATIONS

        bad = [a for a in v if a not in ACTIVATIONS]
        if bad:
            raise ValueError(f"unknown activation {bad[0]!r}; valid: {', '.join(ACTIVATIONS)}")
        return v

    @field_validator("pools")
    @classmethod
    def _pools(cls, v: list[str]) -> list[str]:
        if any(p not in ("max", "avg", "none") for p in v):
            raise ValueError("pools must be among max, avg, none")
        return v

    @field_validator("head_hidden")
    @classmethod
    def _hidden(cls, v: list[int]) -> list[int]:
        if any(not 0 <= h <= 65536 for h in v):
            raise ValueError("every head_hidden size must be in [0, 65536] (0: no hidden layer)")
        return sorted(set(v))

    @field_validator("head_kinds")
    @classmethod
    def _heads(cls, v: list[str]) -> list[str]:
        if any(h not in ("gap", "flatten") for h in v):
            raise ValueError("head_kinds must be among gap, flatten")
        return v

    @model_validator(mode="after")
    def _ranges(self) -> SpaceConfig:
        if self.min_stages > self.max_stages:
            raise ValueError(f"min_stages ({self.min_stages}) must be <= max_stages ({self.max_stages})")
        if self.min_depth > self.max_depth:
            raise ValueError(f"min_depth ({self.min_depth}) must be <= max_depth ({self.max_depth})")
        return self


class StrategyConfig(Strict):
    name: str = "nsga2"  # random | ga | nsga2 | regularized | a plugin
    population: int = Field(8, ge=2, le=10000)  # candidates per generation (and population size)
    params: dict[str, Any] = Field(default_factory=dict)  # strategy-specific knobs (tournament_size ...)


class CustomObjectiveConfig(Strict):
    """A user objective (evofusion.objectives.custom): ``fn(model, val_x, val_y) -> float``."""

    fn: str  # import path "package.module:function"
    direction: Literal["max", "min"] = "max"
    scale: Literal["linear", "log10"] = "linear"
    weight: float = Field(0.1, ge=0, le=1e6)  # default MOFE weight


class ObjectivesConfig(Strict):
    names: list[str] = Field(default_factory=lambda: ["accuracy", "params"], min_length=1)
    constraints: list[str] = Field(default_factory=list)  # e.g. "params <= 50000"
    weights: dict[str, float] = Field(default_factory=dict)  # MOFE weights; defaults per objective
    latency_threads: int = Field(1, ge=1, le=256)
    custom: dict[str, CustomObjectiveConfig] = Field(default_factory=dict)  # user objectives by name


class ResourcesConfig(Strict):
    """What one candidate asks of the executor (Ray task resources; GPU slots of the process pool)."""

    cpus: float = Field(1.0, gt=0, le=1024)  # CPUs per candidate (Ray num_cpus)
    gpus: float = Field(0.0, ge=0, le=64)  # GPUs per candidate; 0.25 = four candidates share a GPU
    gpu_memory_mb: float | None = Field(None, gt=0)  # process pool: estimate per candidate; packs a GPU by memory


class SchedulerConfig(Strict):
    """Multi-fidelity rungs (evofusion.engine.scheduler): total training steps at which candidates are
    scored; the best 1/eta at a rung continue to the next."""

    rungs: list[int] = Field(default_factory=lambda: [150, 450, 1350, 4050], min_length=1)  # increasing steps
    eta: float = Field(3.0, ge=1.5, le=100)  # reduction factor

    @field_validator("rungs")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if v[0] < 1 or any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("rungs must be increasing step counts >= 1, e.g. [100, 300, 900]")
        return v


class SearchControllerConfig(Strict):
    """The operator controller of a search (evofusion.strategies.operator_control): which mutation
    operator makes each child, learned from the child's gain over its parent."""

    name: str = "bandit"  # random | bandit | rl
    params: dict[str, Any] = Field(default_factory=dict)  # e.g. {c: 0.5, decay: 0.95} or {lr: 0.5}
    failure_reward: float = Field(-1.0, ge=-100, le=0)  # reward of a FAILED or newly infeasible child


class SupernetSearchConfig(Strict):
    """Score candidates from a trained supernet's shared weights instead of training them
    (evofusion.supernet.score): the search space becomes the supernet's subnets."""

    run: str  # directory of a finished supernet run (it holds supernet.json + supernet.safetensors)
    val_size: int | None = Field(1000, ge=10)  # validation examples a subnet is scored on; null = all
    calib_batches: int | None = Field(None, ge=1, le=256)  # BN recalibration batches; null = the run's


class SearchConfig(Strict):
    seed: int = Field(0, ge=0)
    generations: int = Field(3, ge=1, le=100000)
    max_evaluations: int | None = Field(None, ge=1)
    max_seconds: float | None = Field(None, gt=0)  # wall clock budget of the search loop
    executor: Literal["serial", "process", "ray"] = "serial"
    workers: int = Field(2, ge=1, le=1024)  # process executor only
    address: str | None = None  # ray executor: cluster HOST:PORT, "auto" (RAY_ADDRESS); null = a local Ray
    timeout: float | None = Field(None, gt=0)  # seconds one candidate may run before it is killed (FAILED)
    retries: int = Field(2, ge=0, le=100)  # re-runs of a candidate whose worker or node died; then FAILED
    recycle_after: int | None = Field(None, ge=1)  # process executor: replace a worker after N candidates
    resources: ResourcesConfig = Field(default_factory=lambda: ResourcesConfig())
    threads: int = Field(0, ge=0, le=256)  # torch threads per evaluation; 0 = all cores / workers
    device: str = Field("cpu", pattern=r"^(cpu|auto|cuda(:\d+)?)$")  # where candidates train; auto = cuda if present
    inherit_weights: bool = True  # children start from their first parent's weights where shapes allow
    # multi-fidelity rungs; null = every candidate trains distill.steps once (the earlier behaviour)
    scheduler: SchedulerConfig | None = None
    # Lamarckian: a function-preserving child starts with its parent's exact function and optimizer
    # moments (null/false = the overlap copy); omitted at the default so stored configs keep resuming
    lamarckian: bool | None = None
    # meta-controller over mutation operators; null = uniform draws (the earlier behaviour)
    controller: SearchControllerConfig | None = None
    cache_dir: str | None = None  # teacher outputs and prepared data; default $EVOFUSION_CACHE or ~/.cache/evofusion
    # your own training and scoring of each candidate, by import path (engine/user_evaluate.py);
    # null = the built-in KD loop
    evaluate_fn: str | None = None
    # search the subnets of a trained supernet (scored from its shared weights, not trained); null = off
    supernet: SupernetSearchConfig | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    final: FinalConfig = Field(default_factory=FinalConfig)
    space: SpaceConfig = Field(default_factory=SpaceConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    objectives: ObjectivesConfig = Field(default_factory=ObjectivesConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def config_error(e: ValidationError) -> ConfigError:
    """The first pydantic error as a ConfigError naming the dotted field (and the bad value)."""
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "config"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    if "input" in err and err["type"] != "extra_forbidden" and not isinstance(err["input"], dict):
        msg += f" (got {err['input']!r})"
    return ConfigError(field, msg)


M = TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], data: Any) -> M:
    """``data`` validated as ``model`` (any run kind's config); ConfigError names the first bad field."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise ConfigError("config", "must be a mapping of keys to values")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise config_error(e) from None


def validate_config(data: dict[str, Any]) -> SearchConfig:
    """Validate a config mapping; raises ConfigError naming the first bad field."""
    cfg = validate_model(SearchConfig, data)
    _semantic_checks(cfg)
    return cfg


def _semantic_checks(cfg: SearchConfig) -> None:
    from evofusion.data import dataset_names
    from evofusion.objectives.base import Constraint, check_satisfiable, make_objective
    from evofusion.strategies import STRATEGIES

    if cfg.data.name not in dataset_names():
        raise ConfigError("data.name", f"unknown data set {cfg.data.name!r}; valid: {', '.join(dataset_names())}")
    if cfg.strategy.name not in STRATEGIES:
        raise ConfigError("strategy.name", f"unknown strategy {cfg.strategy.name!r}; valid: "
                          + ", ".join(STRATEGIES.names()))
    if cfg.controller is not None:
        from evofusion.strategies.operator_control import OPERATOR_CONTROLLERS

        if cfg.controller.name not in OPERATOR_CONTROLLERS.names():
            raise ConfigError("controller.name", f"unknown operator controller {cfg.controller.name!r}; valid for "
                              f"search: {', '.join(OPERATOR_CONTROLLERS.names())} (evolutionary is grow's: it "
                              "scores edits of one live student)")
    if cfg.supernet is not None:  # the supernet run itself is checked by the study's set-up
        for key, on in (("scheduler", cfg.scheduler), ("lamarckian", cfg.lamarckian), ("evaluate_fn", cfg.evaluate_fn),
                        ("distill.features", cfg.distill.features)):
            if on:
                raise ConfigError(key, "a supernet search scores subnets from the shared weights without training "
                                  f"them; drop {key} (or supernet)")
    if cfg.evaluate_fn:  # importable now, not first in a worker
        from evofusion.engine.user_evaluate import resolve_evaluate_fn

        resolve_evaluate_fn(cfg.evaluate_fn)
    if cfg.objectives.custom:
        from evofusion.objectives.custom import declare

        declare({k: v.model_dump() for k, v in cfg.objectives.custom.items()})
    for n in cfg.objectives.names:
        make_objective(n)
    if len(set(cfg.objectives.names)) != len(cfg.objectives.names):
        raise ConfigError("objectives.names", "an objective is listed twice")
    check_satisfiable([Constraint.parse(c) for c in cfg.objectives.constraints])
    for name in cfg.objectives.weights:
        if name not in cfg.objectives.names:
            raise ConfigError("objectives.weights", f"a weight for {name!r}, which is not an objective of this "
                              f"run; objectives: {', '.join(cfg.objectives.names)}")
    if cfg.data.name == "digits" and cfg.data.data_dir is not None:
        raise ConfigError("data.data_dir", "the digits ship with scikit-learn and are not read from a folder; "
                          "drop --data-dir, or use a data set read from files (fashion-mnist, mnist, cifar10)")
    check_device(cfg.device)
    if cfg.cache_dir is not None and Path(cfg.cache_dir).exists() and not Path(cfg.cache_dir).is_dir():
        raise ConfigError("cache_dir", f"{cfg.cache_dir} is a file; give a folder (it is created if missing)")
    _executor_checks(cfg)
    if "accuracy" not in cfg.objectives.names:
        raise ConfigError("objectives.names", "must include 'accuracy'")
    if cfg.teacher.path is not None and not Path(cfg.teacher.path).exists():
        raise ConfigError("teacher.path", f"{cfg.teacher.path} does not exist")
    _check_cdka(cfg)
    if cfg.teacher.arch is not None:
        from evofusion.teachers import list_teachers

        if cfg.teacher.arch not in list_teachers():
            raise ConfigError("teacher.arch", f"unknown teacher {cfg.teacher.arch!r}; valid: "
                              + ", ".join(list_teachers()))


def _executor_checks(cfg: SearchConfig) -> None:
    if cfg.address is not None and cfg.executor != "ray":
        raise ConfigError("address", f"only the ray executor connects to a cluster; set executor: ray "
                          f"(got executor {cfg.executor!r})")
    if cfg.address is not None and cfg.address != "auto" and not re.fullmatch(r"(ray://)?[\w.\-]+:\d{1,5}",
                                                                              cfg.address):
        raise ConfigError("address", f"expected HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:PORT or auto "
                          f"(got {cfg.address!r})")
    if cfg.resources.gpus > 1 and cfg.resources.gpus != int(cfg.resources.gpus):
        raise ConfigError("resources.gpus", f"a fraction of a GPU must be below 1, more than one GPU a whole "
                          f"number (got {cfg.resources.gpus})")
    if cfg.resources.gpus > 0 and cfg.device == "cpu":
        raise ConfigError("device", "resources.gpus > 0 asks for GPUs but device is cpu; set device: auto or cuda")


def _check_cdka(cfg: SearchConfig) -> None:
    from evofusion.distill.features import FEATURE_LOSSES
    from evofusion.teachers.text import TEXT_TEACHERS

    d = cfg.distill
    n_teachers = 1 + len(d.teachers or [])
    for i, f in enumerate(d.features or []):
        if f.loss not in FEATURE_LOSSES or f.loss == "contrastive":
            raise ConfigError(f"distill.features.{i}.loss", f"unknown feature loss {f.loss!r}; valid: "
                              + ", ".join(n for n in FEATURE_LOSSES.names() if n != "contrastive"))
        if f.teacher >= n_teachers:
            raise ConfigError(f"distill.features.{i}.teacher", f"is {f.teacher} but there are {n_teachers} "
                              "teacher(s): 0 = teacher, 1.. = distill.teachers")
        if d.augment != "none" and (f.reduce or ("attention" if f.loss == "at" else "pool")) != "gap" and f.size > 1:
            raise ConfigError("distill.augment", f"is {d.augment!r} but distill.features.{i} compares feature maps "
                              "cached for un-augmented inputs: use augment: none, or reduce: gap / size: 1")
    for i, t in enumerate(d.teachers or []):
        if not Path(t.path).exists():
            raise ConfigError(f"distill.teachers.{i}.path", f"{t.path} does not exist")
    if d.text_teacher is not None and d.text_teacher.model not in TEXT_TEACHERS:
        raise ConfigError("distill.text_teacher.model", f"unknown text teacher {d.text_teacher.model!r}; valid: "
                          + ", ".join(TEXT_TEACHERS.names()))
    uses = d.features or d.teachers or d.teacher_weight is not None or d.teacher_weighting is not None
    if uses and not cfg.teacher.enabled:
        raise ConfigError("teacher.enabled", "is false but distill.features / teachers need the teacher; "
                          "enable it or drop those keys")


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SearchConfig:
    """Read a YAML config (``yaml.safe_load``), apply dotted-key overrides, validate."""
    data = read_yaml(path)
    for k, v in (overrides or {}).items():
        set_dotted(data, k, v)
    return validate_config(data)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    d = data
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise ConfigError(key, "parent key is not a mapping")
    d[parts[-1]] = value


def config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable list of differences between two config dicts."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b, key = old.get(k), new.get(k), f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, key + ".")
        elif a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out
