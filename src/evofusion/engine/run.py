"""The one run lifecycle every kind of run shares: create, resume, optimize, checkpoint, finalize.

A run kind (search, prune, grow, evolve-weights) subclasses :class:`Run` and supplies its own
set-up (in its ``create`` / ``resume`` classmethods, through the helpers here), one ``_step``, the
``done`` test, its JSON ``_state`` and its ``_tensors``. Everything else is this file's:

* **create** -- validation and set-up run first; only then the run directory is created, atomically,
  with its config, data fingerprint, teacher and kind (:meth:`Run._new_store`), so bad input leaves
  nothing behind and a kill at any moment leaves either no run or a resumable one.
* **resume** -- :meth:`Run._reopen` checks the kind (and names the command for another kind),
  recovers a corrupt database from its backup; :meth:`Run._resume_config` diffs the requested config
  against the one in effect, allowing the budget keys freely and anything else only with
  ``allow_config_change``; :meth:`Run._check_data` compares the data fingerprint; :meth:`Run._restore`
  loads the newest checkpoint whose checksum, tensor sidecar and database digest verify. A config
  change is written (as a config-history event from the current generation on) only after the saved
  state loaded under the new config (:meth:`Run._commit_config`), so a change that cannot apply
  leaves the run exactly as it was.
* **optimize** -- callbacks around the loop, ``step()`` until ``done()``; every step ends with a
  checkpoint (checksummed JSON, tensors sidecar, database digest) and a database backup. A full,
  read-only or failing disk stops the run with a RunStoreError naming the last intact checkpoint.

The contract a subclass may rely on: ``generation`` counts finished steps and is restored on resume;
``_load_state(state, tensors)`` gets back exactly what ``_state()`` / ``_tensors()`` returned at the
checkpoint (plus ``generation``, ``next_id``, ``elapsed``); the candidates with id < ``next_id`` are
covered by the checkpoint's digest, so rows a killed step wrote above it are re-done by the step.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from evofusion.config import config_diff
from evofusion.engine.callbacks import Callback, JsonlLogger
from evofusion.errors import RunStoreError
from evofusion.registry import Registry
from evofusion.store import RunStore
from evofusion.store.integrity import is_disk_error

# how each kind is resumed from the command line (the per-command --resume flags are aliases)
RESUME_COMMAND = "evofusion resume {dir}"
KIND_NAMES = {"search": "search", "prune": "pruning", "grow": "growth", "weights": "weight-evolution", "supernet": "supernet"}


@dataclass(frozen=True)
class ConfigChange:
    """A config change asked for on resume: the full new config and its diff lines."""

    config: dict[str, Any]
    diff: list[str]


class Run:
    """Base of every run kind. Subclasses set ``kind`` and implement ``_step`` and ``done``."""

    kind: ClassVar[str] = ""
    # top-level config keys a resume may change without allow_config_change (budgets, where it runs)
    budget_keys: ClassVar[tuple[str, ...]] = ()
    keep_checkpoints: ClassVar[int | None] = None  # None keeps every checkpoint
    # config keys added after runs were stored, with the value that reproduces their behaviour then
    # (filled into a stored config that lacks them before a resume compares configs)
    legacy_defaults: ClassVar[dict[str, Any]] = {}

    _store: RunStore | None = None
    generation: int = 0
    elapsed: float = 0.0
    warnings: list[str]
    callbacks: list[Callback]

    @property
    def store(self) -> RunStore:
        """The run directory's store (a run set up before its directory exists has none yet)."""
        if self._store is None:
            raise RunStoreError("this run has no run directory yet")
        return self._store

    def _init_run(self, store: RunStore, callbacks: Sequence[Callback] = ()) -> None:
        self._store = store
        self.generation, self.elapsed = 0, 0.0
        self.warnings = []
        self.callbacks = [JsonlLogger(store.dir / "logs.jsonl"), *callbacks]

    # --- hooks ---------------------------------------------------------------------------------
    def _step(self) -> Any:
        """One unit of work (a generation, a growth interval); the base checkpoints after it."""
        raise NotImplementedError

    def done(self) -> bool:
        raise NotImplementedError

    @property
    def next_id(self) -> int:
        """Candidates with a smaller id are final: the checkpoint's database digest covers them."""
        return int(getattr(self, "_next_id", 0))

    @next_id.setter
    def next_id(self, value: int) -> None:
        self._next_id = int(value)

    def _state(self) -> dict[str, Any]:
        """JSON-serializable state of the run kind (strategy, counters, RNG states)."""
        return {}

    def _tensors(self) -> dict[str, Any]:
        """Tensors of the state (weights, optimizer moments, populations); a safetensors sidecar."""
        return {}

    def _load_state(self, state: dict[str, Any], tensors: dict[str, Any]) -> None:
        """Restore what ``_state`` / ``_tensors`` returned (the base restores ``generation``,
        ``next_id`` and ``elapsed`` after it). Raise ValueError/KeyError when the state does not fit:
        the base turns that into a clear RunStoreError and writes nothing."""

    def progress(self) -> tuple[int, int | None, str]:
        """(units done, units in all or None, what a unit is) for progress bars."""
        return self.generation, None, "step"

    def time_budget(self) -> float | None:
        """Wall-clock seconds the run may search (``max_seconds``), or None; progress shows its ETA."""
        return None

    def _finalize(self, log: Callable[[str], Any]) -> Any:
        """The kind's final step after the last generation (fine-tune winners, the winning ticket, the
        best vector's test accuracy); idempotent, so a resumed finished run repeats nothing."""
        return None

    def result_text(self, result: Any) -> str:
        """One human-readable line (or block) of what ``complete`` returned, for the CLI."""
        return ""

    # --- create / resume helpers ---------------------------------------------------------------
    @staticmethod
    def _refuse_existing(run_dir: str | Path) -> None:
        """Fail early (before any set-up work) when ``run_dir`` already holds a run."""
        if (Path(run_dir) / "run.db").exists():
            raise RunStoreError(f"{run_dir} already holds a run; use `{RESUME_COMMAND.format(dir=run_dir)}` "
                                "or choose another --run-dir")

    @classmethod
    def _new_store(cls, run_dir: str | Path, config: dict[str, Any], data: dict[str, Any],
                   teacher: dict[str, Any] | None, **extra: Any) -> RunStore:
        """Create the run directory atomically with its kind, config, data and teacher meta."""
        cls._refuse_existing(run_dir)
        meta = {"kind": cls.kind, "config": config, "data": data, "teacher": teacher, **extra}
        return RunStore(run_dir, create=True, meta=meta)

    @classmethod
    def _reopen(cls, run_dir: str | Path) -> RunStore:
        """Open a run of this kind for resuming (a corrupt database is replaced by its backup)."""
        store = RunStore(run_dir, recover=True)
        kind = store.kind()
        if kind != cls.kind:
            store.close()
            raise RunStoreError(f"{run_dir} is a {KIND_NAMES.get(kind, kind)} run, not a "
                                f"{KIND_NAMES.get(cls.kind, cls.kind)} run; continue it with "
                                f"`{RESUME_COMMAND.format(dir=run_dir)}`")
        return store

    @classmethod
    def _resume_config(cls, store: RunStore, overrides: dict[str, Any] | None, allow_config_change: bool,
                       validate: Callable[[dict[str, Any]], Any], section: str | None = None
                       ) -> tuple[Any, ConfigChange | None]:
        """The validated config to resume with and the diff against the config in effect.

        ``overrides`` replace top-level keys (of ``section`` when the run's config nests there).
        Nothing is written here: the change is recorded by ``_commit_config`` once the state loaded.
        """
        effective = store.config()
        for dotted, legacy in cls.legacy_defaults.items():  # keys added since: their behaviour before
            d = effective[section] if section else effective
            *parents, last = dotted.split(".")
            for k in parents:
                d = d.get(k) if isinstance(d, dict) else None
            if isinstance(d, dict) and last not in d:
                d[last] = legacy
        old = effective[section] if section else effective
        new = {**old, **(overrides or {})}
        cfg = validate(new)
        new_dict = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg.model_dump(mode="json")
        diff = config_diff(old, new_dict)
        locked = [d for d in diff if not cls._is_budget(d.split(":")[0])]
        if locked and not allow_config_change:
            raise RunStoreError("the config differs from the run's; pass --allow-config-change to resume "
                                "anyway:\n  " + "\n  ".join(locked))
        full = {**effective, section: new_dict} if section else new_dict
        return cfg, (ConfigChange(full, diff) if diff else None)

    @classmethod
    def _is_budget(cls, key: str) -> bool:
        return any(key == b or key.startswith(b + ".") for b in cls.budget_keys)

    @staticmethod
    def _check_data(store: RunStore, fingerprint: str) -> None:
        data = store.get_meta("data") or {}
        if data.get("fingerprint") != fingerprint:
            from evofusion.data import dataset_names

            name = data.get("name")
            if isinstance(name, str) and name not in dataset_names():
                raise RunStoreError(
                    f"this run was made from in-memory data {name!r} (from_arrays / from_torch_dataset in "
                    "Python), which the CLI cannot load; resume it in Python with the same data: "
                    f"Study.resume({str(store.dir)!r}, splits=...) (data fingerprint {data.get('fingerprint')})")
            raise RunStoreError(f"the data differ from the run's (fingerprint {fingerprint} vs "
                                f"{data.get('fingerprint')}); resume with the same data set")

    def _restore(self, log: Callable[[str], Any] = print) -> dict[str, Any] | None:
        """Load the newest consistent checkpoint (None: the run starts from the beginning)."""
        state, warnings = self.store.consistent_checkpoint()
        self.warnings = warnings
        for w in warnings:
            log(w)
        if state is not None:
            try:
                tensors = self.store.checkpoint_tensors(state)
                self._load_state(state, tensors)
            except (ValueError, KeyError, TypeError, RuntimeError) as e:
                raise RunStoreError(f"the state saved after generation {state['generation']} does not fit this "
                                    f"run's config ({type(e).__name__}: {e}); a changed config that alters what "
                                    "the state holds (the strategy, the space) cannot be resumed: start a new "
                                    "run, or resume with the run's own config") from None
            self.generation = int(state["generation"])
            self.next_id = int(state.get("next_id", 0))
            self.elapsed = float(state.get("elapsed", 0.0))
            self._load_callbacks(state.get("callbacks", []))
        return state

    def _commit_config(self, change: ConfigChange | None) -> None:
        """Record a validated config change as a history event from this generation on."""
        if change is not None:
            self.store.record_config(change.config, self.generation, change.diff)

    def _load_callbacks(self, saved_states: list[dict[str, Any]]) -> None:
        # matched by class (the list may differ, e.g. --quiet drops the progress bar)
        saved: dict[str, list[dict[str, Any]]] = {}
        for entry in saved_states:
            saved.setdefault(entry["class"], []).append(entry["state"])
        for c in self.callbacks:
            pending = saved.get(type(c).__name__)
            if pending:
                c.load_state_dict(pending.pop(0))

    # --- the loop ------------------------------------------------------------------------------
    def optimize(self) -> Run:
        """Step until done; callbacks around; a checkpoint after every step."""
        for cb in self.callbacks:
            cb.on_study_start(self)
        while not self.done():
            self.step()
        for cb in self.callbacks:
            cb.on_study_end(self)
        return self

    def complete(self, log: Callable[[str], Any] = print) -> Any:
        """``optimize()`` to the end, then the kind's ``_finalize``; returns its result. A full or
        read-only disk during either stops the run with RunStoreError, the last checkpoint intact."""
        self.optimize()
        return self.guard_disk(lambda: self._finalize(log))

    def step(self) -> Any:
        """One step and its checkpoint. A full, read-only or failing disk stops the run with
        RunStoreError; the last checkpoint stays intact."""
        try:
            t0 = time.perf_counter()
            out = self._step()
            self.elapsed += time.perf_counter() - t0
            self.generation += 1
            self.checkpoint()
        except (OSError, sqlite3.OperationalError) as e:
            if is_disk_error(e):
                raise self._disk_error(f"{type(e).__name__}: {e}") from e
            raise
        for cb in self.callbacks:
            cb.on_generation_end(self, self.generation - 1, out if isinstance(out, list) else [])
        return out

    def checkpoint(self) -> None:
        """Write the checkpoint of the current generation (JSON + tensors + digest) and a DB backup."""
        state = {**self._state(), "next_id": self.next_id, "elapsed": self.elapsed,
                 "db_digest": self.store.rows_digest(self.next_id),
                 "callbacks": [{"class": type(c).__name__, "state": c.state_dict()} for c in self.callbacks]}
        self.store.write_checkpoint(self.generation, state, self._tensors(), keep=self.keep_checkpoints)
        self.store.backup(self.generation)

    def _disk_error(self, what: str) -> RunStoreError:
        state, _ = self.store.latest_checkpoint()
        last = f"checkpoint of generation {state['generation']}" if state else "no checkpoint yet"
        return RunStoreError(f"cannot write to the run directory {self.store.dir} ({what}); the run stopped. "
                             f"Its last {last} is intact: free disk space (or make it writable) and run "
                             f"`{RESUME_COMMAND.format(dir=self.store.dir)}`")

    def guard_disk(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (e.g. a final fine-tune) and turn a disk error into the run's clean stop."""
        try:
            return fn()
        except (OSError, sqlite3.OperationalError) as e:
            if is_disk_error(e):
                raise self._disk_error(f"{type(e).__name__}: {e}") from e
            raise

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


# run kinds by name; the package's own are entry points (group ``evofusion.runs``), imported on use
RUN_KINDS: Registry[type[Run]] = Registry("runs")


def run_class(kind: str) -> type[Run]:
    """The Run subclass of a kind (``search``, ``prune``, ``grow``, ``weights`` or a plugin's)."""
    try:
        return RUN_KINDS.get(kind)  # type: ignore[return-value]
    except KeyError:
        raise RunStoreError(f"unknown run kind {kind!r}; this EvoFusion resumes "
                            f"{', '.join(RUN_KINDS.names())}") from None


def resume_run(run_dir: str | Path, **kwargs: Any) -> Run:
    """Resume any kind of run: reads the kind from the run directory and calls that kind's resume.

    Keyword arguments go to the kind's ``resume`` (``overrides``, ``allow_config_change``, ``log``,
    ``callbacks`` ...).
    """
    return run_class(RunStore.peek_kind(run_dir)).resume(run_dir, **kwargs)  # type: ignore[attr-defined, no-any-return]
