"""The run loop of weight-space evolution, in the same run store as architecture search.

A ``WeightStudy`` evolves the flat weight vector of one fixed student architecture:

1. **Ancestors.** ``P`` students are trained with the one training loop
   (:func:`evofusion.distill.train`): ``ancestors.seeds`` runs with different seeds, keeping the
   weights of each run's last ``ancestors.last_k`` epochs (``on_epoch``) -- the Darwinian-DE recipe
   of starting from back-propagation "ancestors". Each is saved under ``RUN_DIR/ancestors`` and
   recorded as a candidate (generation -1, operator ``bp``).
2. **Evolution.** Each generation: ``ask`` -> score the trials (batched by
   :class:`~evofusion.weights.vector.PopulationEvaluator`, or per member for few-shot fitness) ->
   ``tell`` -> one candidate row for the generation's best vector (weights as safetensors) -> an
   atomic checkpoint (strategy state and run generator in ``checkpoints/gen_XXXXX.json``, every
   strategy tensor in ``checkpoints/gen_XXXXX.safetensors``).
3. **Final.** The best vector's validation and test accuracy go to the ``finals`` table, so
   ``evofusion report`` shows them.

Fitness kinds (``fitness.kind``): ``train_loss_slice`` -- cross-entropy on a random slice of
``fitness.batch`` training examples, re-drawn every generation from the run's generator (the DE
family's default); ``val_accuracy`` -- validation accuracy (Evolver and ES default); ``fewshot`` --
mean linear-probe accuracy on N-way K-shot episodes of held-out classes drawn from the training
split (ancestors never see those classes; the ``accuracy`` recorded is the same measure on
episodes from the validation split, the final test accuracy on episodes from the test split).
Internally every kind is a score where higher is better; the DE family minimises its negation.

Buffers (BatchNorm statistics) are not evolved: every vector runs with the buffers of the ancestor
whose initial score was best (see :mod:`evofusion.weights.vector`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from safetensors.torch import load as st_load

from evofusion.config import Strict, check_data_name, validate_model
from evofusion.engine.callbacks import Callback
from evofusion.engine.run import Run
from evofusion.errors import ConfigError
from evofusion.seeding import derive_seed, torch_seeded
from evofusion.store import RunStore
from evofusion.store.weights import cpu_state, save_weights
from evofusion.weights import cade as _cade  # noqa: F401 - registers "cade"
from evofusion.weights import de as _de  # noqa: F401 - registers "de"
from evofusion.weights import es as _es  # noqa: F401 - registers "es"
from evofusion.weights import evolver as _evolver  # noqa: F401 - registers "evolver"
from evofusion.weights import shade as _shade  # noqa: F401 - registers "shade"
from evofusion.weights.base import create_weight_strategy, generator_state_from_str, generator_state_to_str
from evofusion.weights.fewshot import Episode, fewshot_fitness, heldout_split, make_episodes
from evofusion.weights.vector import PopulationEvaluator, load_vector, num_params, to_vector

__all__ = ["WeightStudy", "WeightStudyConfig", "validate_weight_config"]

DE_FAMILY = ("de", "shade", "cade")
STRATEGY_NAMES = (*DE_FAMILY, "es", "evolver")
FitnessKind = Literal["train_loss_slice", "val_accuracy", "fewshot"]


# --- config ----------------------------------------------------------------------------------------
class WeightDataConfig(Strict):
    name: str = "digits"
    data_dir: str | None = None
    limit: int | None = Field(None, ge=10)  # training examples kept (None = all)
    val_fraction: float = Field(0.1, gt=0, le=0.5)


class AncestorsConfig(Strict):
    epochs: int = Field(2, ge=1, le=1000)  # epochs of every back-propagation run
    last_k: int = Field(1, ge=1, le=1000)  # ancestors kept per run: its last k epochs (<= epochs)
    seeds: int | None = Field(None, ge=1, le=100000)  # runs; None = ceil(P / last_k)
    batch_size: int = Field(64, ge=1, le=65536)
    lr: float = Field(3e-3, gt=0, le=10)


class FitnessConfig(Strict):
    kind: FitnessKind | None = None  # None: train_loss_slice for de/shade/cade, val_accuracy otherwise
    batch: int = Field(256, ge=1)  # train_loss_slice: examples per slice
    holdout: list[int] = Field(default_factory=lambda: [5, 6, 7, 8, 9])  # fewshot: held-out classes
    n_way: int = Field(5, ge=2)
    k_shot: int = Field(5, ge=1)
    queries: int = Field(5, ge=1)  # query examples per class
    episodes: int = Field(8, ge=1)  # episodes in each fixed list (fitness, val, test)


class WeightStudyConfig(Strict):
    strategy: Literal["de", "shade", "cade", "es", "evolver"] = "de"
    params: dict[str, Any] = Field(default_factory=dict)  # the strategy's keyword arguments
    population: int = Field(8, ge=2, le=100000)  # P: ancestors; ES: offspring per round
    generations: int = Field(10, ge=1, le=1000000)
    seed: int = Field(0, ge=0)
    data: WeightDataConfig = Field(default_factory=WeightDataConfig)
    student: dict[str, Any] | None = None  # a StudentGenome dict; shape fields default to the data's
    ancestors: AncestorsConfig = Field(default_factory=AncestorsConfig)
    fitness: FitnessConfig = Field(default_factory=FitnessConfig)

    def fitness_kind(self) -> str:
        if self.fitness.kind is not None:
            return self.fitness.kind
        return "train_loss_slice" if self.strategy in DE_FAMILY else "val_accuracy"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def validate_weight_config(data: dict[str, Any]) -> WeightStudyConfig:
    """Validate a weight-study config mapping; raises ConfigError naming the first bad field."""
    cfg = validate_model(WeightStudyConfig, data)
    check_data_name(cfg.data.name)
    if cfg.ancestors.last_k > cfg.ancestors.epochs:
        raise ConfigError("ancestors.last_k", f"must be <= ancestors.epochs ({cfg.ancestors.epochs}), "
                          f"got {cfg.ancestors.last_k}")
    runs = cfg.ancestors.seeds or math.ceil(cfg.population / cfg.ancestors.last_k)
    if runs * cfg.ancestors.last_k < cfg.population:
        raise ConfigError("ancestors.seeds", f"{runs} runs x last_k {cfg.ancestors.last_k} give fewer than "
                          f"population={cfg.population} ancestors")
    if cfg.fitness_kind() == "fewshot" and cfg.fitness.n_way > len(set(cfg.fitness.holdout)):
        raise ConfigError("fitness.n_way", f"must be <= the number of held-out classes "
                          f"({len(set(cfg.fitness.holdout))}), got {cfg.fitness.n_way}")
    _make_strategy(cfg, torch.zeros(cfg.population, 4), torch.zeros(cfg.population), torch.Generator())
    return cfg


def _make_strategy(cfg: WeightStudyConfig, population: torch.Tensor, score: torch.Tensor,
                   generator: torch.Generator) -> Any:
    """The strategy for ``population`` whose scores (higher is better) are ``score``; every weight
    strategy minimizes, so it is told the negated scores.

    Errors from the strategy's own checks are re-raised naming ``params.<field>``.
    """
    params = dict(cfg.params)
    if cfg.strategy == "cade":
        params.setdefault("total_generations", cfg.generations)
    if cfg.strategy == "es":
        params.setdefault("offspring", cfg.population)
    try:
        return create_weight_strategy(cfg.strategy, population, -score, generator, **params)
    except ConfigError as e:
        if e.field == "population":
            raise ConfigError("population", str(e).split(": ", 1)[-1]) from None
        raise ConfigError(f"params.{e.field}", str(e).split(": ", 1)[-1]) from None
    except TypeError as e:
        raise ConfigError("params", f"invalid parameter for strategy {cfg.strategy!r} ({e})") from None


def _hash_tensor(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


# --- the study ---------------------------------------------------------------------------------------
class WeightStudy(Run):
    """Weight-space evolution of one student architecture with a run directory that resumes exactly.

    Create with :meth:`create` (new run directory) or :meth:`resume`; then :meth:`optimize` and
    :meth:`close`. ``generation`` counts completed generations (0 right after the ancestors); one
    step of the :class:`~evofusion.engine.run.Run` lifecycle is one generation.
    """

    kind = "weights"
    budget_keys = ("generations",)

    def __init__(self, cfg: WeightStudyConfig, store: RunStore | None, log: Callable[[str], Any] = print,
                 callbacks: Sequence[Callback] = ()):
        from evofusion.data import load_dataset
        from evofusion.genome import StudentGenome, build

        self.cfg, self.log = cfg, log
        if store is not None:
            self._init_run(store, callbacks)
        d = cfg.data
        self.splits = load_dataset(d.name, data_dir=d.data_dir, val_fraction=d.val_fraction, seed=cfg.seed,
                                   limit=d.limit)
        self.genome = self._genome(StudentGenome)
        self.build = build
        self.kind = cfg.fitness_kind()
        self.train_x, self.train_y = self.splits.train.tensors()
        self.val_x, self.val_y = self.splits.val.tensors()
        self.test_x, self.test_y = self.splits.test.tensors()
        if self.kind == "fewshot":
            self._fewshot_setup()
        self.module = self._new_module()
        self.dim = num_params(self.module)
        self.generator = torch.Generator().manual_seed(derive_seed(cfg.seed, 1))  # slices
        self.strategy_generator = torch.Generator().manual_seed(derive_seed(cfg.seed, 2))
        self.strategy: Any = None
        self.generation = 0
        self.buffers_from = 0  # ancestor whose buffers every vector runs with

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def create(cls, cfg: dict[str, Any] | WeightStudyConfig, run_dir: str | Path,
               log: Callable[[str], Any] = print, callbacks: Sequence[Callback] = ()) -> WeightStudy:
        """Validate ``cfg``, load the data, then create ``run_dir`` (nothing is created on bad input)."""
        wcfg = cfg if isinstance(cfg, WeightStudyConfig) else validate_weight_config(cfg)
        cls._refuse_existing(run_dir)  # before any set-up work
        study = cls(wcfg, None, log)  # everything that can fail on bad input, before the directory exists
        config = {"objectives": {"names": ["accuracy", "params"], "constraints": [], "weights": {}},
                  "weights": wcfg.to_dict()}
        from evofusion.engine.study import data_meta

        store = cls._new_store(run_dir, config, {**data_meta(study.splits), "name": wcfg.data.name}, None)
        study._init_run(store, callbacks)
        return study

    @classmethod
    def resume(cls, run_dir: str | Path, log: Callable[[str], Any] = print, *,
               overrides: dict[str, Any] | None = None, allow_config_change: bool = False,
               callbacks: Sequence[Callback] = (), **_: Any) -> WeightStudy:
        """Reopen a weight run; continues from the newest checkpoint whose JSON, tensors and database
        digest verify (``overrides``: top-level keys of the weights config, e.g. ``generations``)."""
        store = cls._reopen(run_dir)
        try:
            cfg, change = cls._resume_config(store, overrides, allow_config_change, validate_weight_config,
                                             section="weights")
            study = cls(cfg, store, log, callbacks)
            cls._check_data(store, study.splits.fingerprint())
            if study._restore(log) is None:
                log("no checkpoint: training the ancestors again")
            else:
                log(f"resuming after generation {study.generation}")
            study._commit_config(change)
            return study
        except BaseException:
            store.close()
            raise

    def _genome(self, student_genome: Any) -> Any:
        from evofusion.genome import StageGene

        s = self.splits
        shape = {"in_channels": s.in_channels, "input_size": s.input_size, "num_classes": s.num_classes}
        if self.cfg.student is None:
            return student_genome(stages=(StageGene(8), StageGene(16)), **shape)
        try:
            return student_genome.from_dict({**shape, **self.cfg.student})
        except ConfigError as e:
            raise ConfigError(f"student.{e.field}", str(e).split(": ", 1)[-1]) from None

    def _new_module(self) -> torch.nn.Module:
        with torch_seeded(derive_seed(self.cfg.seed, 3)):
            return self.build(self.genome)

    def _fewshot_setup(self) -> None:
        f = self.cfg.fitness
        try:
            (self.train_x, self.train_y), (hx, hy) = heldout_split((self.train_x, self.train_y), f.holdout)
            _, (vx, vy) = heldout_split((self.val_x, self.val_y), f.holdout)
            _, (tx, ty) = heldout_split((self.test_x, self.test_y), f.holdout)
            # training labels keep their values: the 10-way head just never sees the held-out ones
            g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, 4))
            args = (f.episodes, f.n_way, f.k_shot, f.queries)
            self.fit_episodes: list[Episode] = make_episodes(hx, hy, *args, generator=g)
            self.val_episodes: list[Episode] = make_episodes(vx, vy, *args, generator=g)
            self.test_episodes: list[Episode] = make_episodes(tx, ty, *args, generator=g)
        except ValueError as e:
            raise ConfigError("fitness", f"cannot draw few-shot episodes: {e}") from None

    # --- scoring -----------------------------------------------------------------------------------
    def score(self, pop: torch.Tensor) -> torch.Tensor:
        """Scores ``(P,)`` of the vectors for the configured fitness, higher is better.

        ``train_loss_slice`` draws a new slice from the run generator on every call.
        """
        if self.kind == "train_loss_slice":
            n = len(self.train_y)
            idx = torch.randperm(n, generator=self.generator)[:min(self.cfg.fitness.batch, n)]
            return -self._loss_eval.evaluate(pop, idx).double()
        if self.kind == "val_accuracy":
            return self._val_eval.evaluate(pop).double()
        return torch.tensor([self._fewshot(v, self.fit_episodes) for v in pop], dtype=torch.float64)

    def _fewshot(self, vec: torch.Tensor, episodes: list[Episode]) -> float:
        load_vector(self.module, vec)
        return fewshot_fitness(self.module, episodes)

    def measure(self, vec: torch.Tensor) -> dict[str, float]:
        """Validation accuracy, full training loss and accuracy, and the parameter count of one vector."""
        from evofusion.distill import predict_logits

        load_vector(self.module, vec)
        logits = predict_logits(self.module, self.train_x)
        values = {"train_loss": float(F.cross_entropy(logits, self.train_y)),
                  "train_accuracy": float((logits.argmax(1) == self.train_y).double().mean()),
                  "params": float(self.dim)}
        if self.kind == "fewshot":
            values["accuracy"] = self._fewshot(vec, self.val_episodes)
        else:
            values["accuracy"] = float((predict_logits(self.module, self.val_x).argmax(1) == self.val_y)
                                       .double().mean())
        return values

    def _evaluators(self) -> None:
        self._loss_eval = PopulationEvaluator(self.module, self.train_x, self.train_y, batch_size=1024,
                                              metric="loss")
        self._val_eval = PopulationEvaluator(self.module, self.val_x, self.val_y, batch_size=1024,
                                             metric="accuracy")

    # --- ancestors ---------------------------------------------------------------------------------
    def _ancestors(self) -> tuple[torch.Tensor, float]:
        from evofusion.distill import TrainConfig, train

        a, p = self.cfg.ancestors, self.cfg.population
        runs = a.seeds or math.ceil(p / a.last_k)
        tcfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, alpha=1.0, restore_best=False)
        states: list[dict[str, torch.Tensor]] = []
        t0 = time.perf_counter()
        for r in range(runs):
            if len(states) >= p:
                break
            seed = derive_seed(self.cfg.seed, 100 + r)
            with torch_seeded(seed):
                model = self.build(self.genome)

            def keep(epoch: int, m: torch.nn.Module) -> None:
                if epoch > a.epochs - a.last_k and len(states) < p:
                    states.append({k: v.detach().clone().contiguous() for k, v in m.state_dict().items()})

            train(model, self.train_x, self.train_y, tcfg, generator=torch.Generator().manual_seed(seed),
                  on_epoch=keep)
        seconds = (time.perf_counter() - t0) / max(1, len(states))
        vectors = []
        for i, state in enumerate(states):
            save_weights(state, self.store.dir / "ancestors" / f"{i}.safetensors")
            self.module.load_state_dict(state)
            vectors.append(to_vector(self.module))
        return torch.stack(vectors), seconds

    def _init(self) -> None:
        pop, seconds = self._ancestors()
        p = self.cfg.population
        self._load_buffers(0)
        self._evaluators()
        score = self.score(pop)
        self.buffers_from = int(torch.argmax(score))
        if self.buffers_from != 0:  # re-score every ancestor with the chosen shared buffers
            self._load_buffers(self.buffers_from)
            score = self.score(pop)
        self.store.set_meta("buffers_from", self.buffers_from)
        for i in range(p):
            values = {**self.measure(pop[i]), "fitness": float(score[i])}
            self._record(i, -1, pop[i], values, "bp", {"ancestor": i}, seconds)
        self.strategy = _make_strategy(self.cfg, pop, score, self.strategy_generator)
        self.next_id = p
        self.checkpoint()

    def _load_buffers(self, i: int) -> None:
        state = st_load((self.store.dir / "ancestors" / f"{i}.safetensors").read_bytes())
        self.module.load_state_dict(state)

    # --- the loop ----------------------------------------------------------------------------------
    def done(self) -> bool:
        return self.strategy is not None and self.generation >= self.cfg.generations

    def progress(self) -> tuple[int, int | None, str]:
        return self.generation, self.cfg.generations, "generation"

    def optimize(self, until: int | None = None) -> dict[str, Any] | None:  # type: ignore[override]
        """Run generations up to ``until`` (default: all); after the last one, record the final result.

        Returns the final row (``finals`` table) once the run is complete, else None.
        """
        for cb in self.callbacks:
            cb.on_study_start(self)
        if self.strategy is None:
            self.log(f"training {self.cfg.population} back-propagation ancestors")
            self.guard_disk(self._init)
        end = self.cfg.generations if until is None else min(until, self.cfg.generations)
        while self.generation < end:
            self.step()
        for cb in self.callbacks:
            cb.on_study_end(self)
        if self.generation >= self.cfg.generations:
            return self.guard_disk(self.finalize)
        return None

    def _finalize(self, log: Any) -> dict[str, Any]:
        return self.finalize()

    def result_text(self, result: dict[str, Any]) -> str:
        return (f"best candidate {result['candidate_id']}: val acc {result['val_accuracy']:.4f}, "
                f"test acc {result['test_accuracy']:.4f}")

    def _step(self) -> list[Any]:
        g = self.generation + 1
        t0 = time.perf_counter()
        trials = self.strategy.ask()
        score = self.score(trials)
        self.strategy.tell(-score)  # every weight strategy minimizes
        vec, loss = self.strategy.best()
        fit = -loss
        values = {**self.measure(vec), "fitness": float(fit)}
        cid = self.cfg.population + g - 1
        outcome = self._record(cid, g, vec, values, self.cfg.strategy, {"generation": g}, time.perf_counter() - t0)
        self.next_id = cid + 1
        self.log(f"gen {g}/{self.cfg.generations}: fitness {fit:.4f} val acc {values['accuracy']:.4f} "
                 f"train loss {values['train_loss']:.4f}")
        return [outcome]

    def _record(self, cid: int, generation: int, vec: torch.Tensor, values: dict[str, float], operator: str,
                args: dict[str, Any], seconds: float) -> Any:
        from evofusion.engine.evaluator import EvalOutcome

        load_vector(self.module, vec)
        path = self.store.weights_path(cid)
        whash = save_weights(cpu_state(self.module), path)
        parents = [] if generation < 0 else ([cid - 1] if generation > 1 else list(range(self.cfg.population)))
        self.store.add_candidate(cid, generation, self.genome.to_dict(), _hash_tensor(vec), parents, operator,
                                 args, self.cfg.seed, status="RUNNING")
        self.store.finish_candidate(cid, "COMPLETE", values, weights_hash=whash, weights_file=path, seconds=seconds)
        outcome = EvalOutcome(cid, "COMPLETE", values, weights_hash=whash, weights_file=str(path), seconds=seconds)
        for cb in self.callbacks:
            cb.on_candidate_end(self, outcome)
        return outcome

    # --- checkpoints (the Run lifecycle writes and verifies them) -------------------------------
    def _state(self) -> dict[str, Any]:
        return {"strategy": self.strategy.state_dict(), "generator": generator_state_to_str(self.generator),
                "buffers_from": self.buffers_from}

    def _tensors(self) -> dict[str, Any]:
        return self.strategy.tensors()

    def _load_state(self, state: dict[str, Any], tensors: dict[str, Any]) -> None:
        self.buffers_from = int(state["buffers_from"])
        self._load_buffers(self.buffers_from)
        pop = tensors.get("population", tensors.get("parent"))
        if pop is None:
            raise KeyError("the checkpoint holds no population")
        if pop.ndim == 1:
            pop = pop[None].expand(self.cfg.population, -1)
        strategy = _make_strategy(self.cfg, pop.clone(), torch.zeros(len(pop), dtype=torch.float64),
                                  self.strategy_generator)
        strategy.load_state_dict(state["strategy"], tensors)
        generator_state_from_str(self.generator, state["generator"])
        self.strategy = strategy
        self._evaluators()

    # --- final -------------------------------------------------------------------------------------
    def best_vector(self) -> torch.Tensor:
        return self.strategy.best()[0]

    def finalize(self) -> dict[str, Any]:
        """Validation and test accuracy of the best vector, in the ``finals`` table (idempotent)."""
        from evofusion.distill import evaluate_accuracy

        cid = self.cfg.population + self.generation - 1 if self.generation else int(self.buffers_from)
        done = {f["candidate_id"]: f for f in self.store.finals()}
        if cid in done:
            return done[cid]
        row = self.store.candidate(cid)
        vec = self.best_vector()
        load_vector(self.module, vec)
        if self.kind == "fewshot":
            test = fewshot_fitness(self.module, self.test_episodes)
        else:
            test = evaluate_accuracy(self.module, self.test_x, self.test_y)
        values = {**row["objective_values"], "test_accuracy": test}
        self.store.add_final(cid, row["objective_values"]["accuracy"], test, values, row["weights_file"],
                             row["weights_hash"], 0.0, {})
        self.log(f"best (candidate {cid}): val acc {values['accuracy']:.4f} test acc {test:.4f}")
        return {"candidate_id": cid, "val_accuracy": values["accuracy"], "test_accuracy": test,
                "objective_values": values}
