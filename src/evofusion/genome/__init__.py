"""Genomes: the student spec, its binary-chromosome codec, JSON I/O and ``build``."""

from evofusion.genome.build import Student, build
from evofusion.genome.chromosome import ChromosomeGenome
from evofusion.genome.io import genome_from_dict, genome_from_json
from evofusion.genome.spec import HeadGene, StageGene, StudentGenome, spatial_sizes

__all__ = ["ChromosomeGenome", "HeadGene", "StageGene", "Student", "StudentGenome", "build",
           "genome_from_dict", "genome_from_json", "spatial_sizes"]
