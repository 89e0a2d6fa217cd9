"""EvoFusion: evolve small students while they distill from a big teacher."""

from evofusion.config import SearchConfig, load_config, validate_config
from evofusion.data import DataSplits, from_torch_dataset, load_dataset
from evofusion.distill import TrainConfig, kd_loss, train
from evofusion.engine import Callback, Study
from evofusion.errors import ConfigError, DataError, EvoFusionError, GenomeError, RunStoreError, TeacherError
from evofusion.export import export_student, load_student
from evofusion.genome import ChromosomeGenome, HeadGene, StageGene, StudentGenome, build
from evofusion.genome.space import SearchSpace
from evofusion.teachers import Teacher, TeacherCache

__version__ = "0.1.0"

__all__ = ["Callback", "ChromosomeGenome", "ConfigError", "DataError", "DataSplits", "EvoFusionError",
           "GenomeError", "HeadGene", "RunStoreError", "SearchConfig", "SearchSpace", "StageGene", "Study",
           "StudentGenome", "Teacher", "TeacherCache", "TeacherError", "TrainConfig", "build", "export_student",
           "from_torch_dataset", "kd_loss", "load_config", "load_dataset", "load_student", "train",
           "validate_config"]
