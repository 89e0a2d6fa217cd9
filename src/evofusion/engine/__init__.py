"""The engine: Study loop, evaluator, executors, callbacks."""

from evofusion.engine.callbacks import Callback, JsonlLogger
from evofusion.engine.evaluator import EvalJob, EvalOutcome, evaluate
from evofusion.engine.executors import EXECUTORS, ProcessExecutor, SerialExecutor
from evofusion.engine.study import Study, candidate_seed, pareto_ids, pick_winners, setup_study

__all__ = ["EXECUTORS", "Callback", "EvalJob", "EvalOutcome", "JsonlLogger", "ProcessExecutor", "SerialExecutor",
           "Study", "candidate_seed", "evaluate", "pareto_ids", "pick_winners", "setup_study"]
