"""Weight-space evolution: flat weight vectors of a fixed student, evolved by DE / SHADE / CADE,
Evolver (evolutionary model merging), ES fusion, with few-shot fitness, simple merges, and the
``WeightStudy`` run loop in the run store. Importing this package registers every weight strategy."""

from __future__ import annotations

from evofusion.weights.base import (
    WEIGHT_STRATEGIES,
    WeightStrategy,
    clean_fitness,
    create_weight_strategy,
)
from evofusion.weights.cade import CADE, cosine_schedule
from evofusion.weights.de import DE, binomial_crossover, distinct_indices
from evofusion.weights.es import ESFusion
from evofusion.weights.evolver import Evolver
from evofusion.weights.fewshot import (
    ConvAutoencoder,
    Episode,
    MetaClassifier,
    features_fn_of,
    fewshot_fitness,
    fomaml,
    heldout_split,
    linear_probe_accuracy,
    make_episodes,
    maml_eval,
    meta_classifier,
    reconstruction_fitness,
    sample_episode,
)
from evofusion.weights.merge import average, task_arithmetic, task_vectors, ties_merge, trim_top_magnitude
from evofusion.weights.shade import SHADE
from evofusion.weights.study import WeightStudy, WeightStudyConfig, validate_weight_config
from evofusion.weights.vector import (
    PopulationEvaluator,
    load_vector,
    num_params,
    param_names,
    to_vector,
    unflatten,
    vectors_from_state_dicts,
)

__all__ = [
    "CADE", "DE", "SHADE", "WEIGHT_STRATEGIES", "ConvAutoencoder", "ESFusion", "Episode", "Evolver",
    "MetaClassifier", "PopulationEvaluator", "WeightStrategy", "WeightStudy", "WeightStudyConfig", "average",
    "binomial_crossover", "clean_fitness", "cosine_schedule", "create_weight_strategy", "distinct_indices",
    "features_fn_of", "fewshot_fitness", "fomaml", "heldout_split", "linear_probe_accuracy", "load_vector",
    "maml_eval", "make_episodes", "meta_classifier", "num_params", "param_names", "reconstruction_fitness",
    "sample_episode", "task_arithmetic", "task_vectors", "ties_merge", "to_vector", "trim_top_magnitude",
    "unflatten", "validate_weight_config", "vectors_from_state_dicts",
]
