"""genome_from_dict / genome_from_json dispatch on kind; SearchSpace.sample stays inside the space."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evofusion.errors import GenomeError
from evofusion.genome.chromosome import ChromosomeGenome
from evofusion.genome.io import GENOME_KINDS, genome_from_dict, genome_from_json
from evofusion.genome.prune import PruneGenome
from evofusion.genome.space import SearchSpace
from evofusion.genome.spec import HeadGene, StageGene, StudentGenome

STUDENT = StudentGenome(stages=(StageGene(8, kernel=5), StageGene(16, skip=True)), head=HeadGene(hidden=8))
CHROMO = ChromosomeGenome.from_string("0110" "1001" "0100" "1010", base_width=8)


def test_kinds_table() -> None:
    assert GENOME_KINDS == {"student": StudentGenome, "chromosome": ChromosomeGenome, "prune": PruneGenome}


@pytest.mark.parametrize("g", [STUDENT, CHROMO])
def test_dispatch_on_kind_round_trips(g: StudentGenome | ChromosomeGenome) -> None:
    back = genome_from_dict(g.to_dict())
    assert type(back) is type(g) and back == g
    back = genome_from_json(g.to_json())
    assert type(back) is type(g) and back == g


def test_missing_kind_means_student() -> None:
    d = STUDENT.to_dict()
    del d["kind"]
    assert genome_from_dict(d) == STUDENT


@pytest.mark.parametrize("d", [{"kind": "transformer", "stages": []}, {"kind": None}, [1, 2], "student"])
def test_unknown_kind_rejected(d: Any) -> None:
    with pytest.raises(GenomeError) as info:
        genome_from_dict(d)
    assert info.value.field == "kind"
    assert "student" in str(info.value) and "chromosome" in str(info.value)


def test_chromosome_errors_surface_as_genome_errors() -> None:
    d = CHROMO.to_dict()
    d["bits"] = "0101"
    with pytest.raises(GenomeError) as info:
        genome_from_dict(d)
    assert info.value.field == "bits"
    d = {**CHROMO.to_dict(), "colour": "red"}
    with pytest.raises(GenomeError) as info:
        genome_from_dict(d)
    assert "colour" in str(info.value)


def test_student_unknown_key_via_io() -> None:
    with pytest.raises(GenomeError) as info:
        genome_from_dict({**STUDENT.to_dict(), "colour": "red"})
    assert info.value.field == "colour"


def test_invalid_json() -> None:
    with pytest.raises(GenomeError) as info:
        genome_from_json("{not json")
    assert info.value.field == "genome"


# --- search space ----------------------------------------------------------------------------------

SPACES = {
    "student": SearchSpace(),
    "student-small": SearchSpace(input_size=8, max_stages=2, widths=(4, 8), max_depth=1, head_hidden=(0,),
                                 allow_skip=False, kernels=(3,), pools=("none",)),
    "chromosome": SearchSpace(encoding="chromosome", chromosome_blocks=5, chromosome_base_width=8),
}


@pytest.mark.parametrize("name", list(SPACES))
def test_samples_lie_inside_the_space(name: str) -> None:
    space = SPACES[name]
    rng = np.random.default_rng(0)
    kind = ChromosomeGenome if space.encoding == "chromosome" else StudentGenome
    for _ in range(30):
        g = space.sample(rng)
        assert isinstance(g, kind)
        assert space.contains(g)
        s = g.to_student()
        assert (s.in_channels, s.input_size, s.num_classes) == \
            (space.in_channels, space.input_size, space.num_classes)
        if isinstance(g, ChromosomeGenome):
            assert g.n_blocks == space.chromosome_blocks and g.base_width == space.chromosome_base_width
        else:
            assert space.min_stages <= len(g.stages) <= space.max_stages
            assert all(st.width in space.widths and st.kernel in space.kernels for st in g.stages)
            assert all(space.min_depth <= st.depth <= space.max_depth for st in g.stages)
            assert all(st.activation in space.activations and st.pool in space.pools for st in g.stages)
            assert g.head.kind in space.head_kinds and g.head.hidden in space.head_hidden
            if not space.allow_skip:
                assert not any(st.skip for st in g.stages)


@pytest.mark.parametrize("name", list(SPACES))
def test_sampling_is_deterministic_for_a_seed(name: str) -> None:
    space = SPACES[name]
    a = [space.sample(np.random.default_rng(42)) for _ in range(3)]
    b1, b2 = np.random.default_rng(42), np.random.default_rng(42)
    assert a[0] == a[1] == a[2]
    seq1 = [space.sample(b1) for _ in range(10)]
    seq2 = [space.sample(b2) for _ in range(10)]
    assert seq1 == seq2
    seq3 = [space.sample(np.random.default_rng(43)) for _ in range(1)] + \
        [space.sample(np.random.default_rng(s)) for s in range(44, 53)]
    assert seq3 != seq1
    assert len({g.hash for g in seq1}) > 1


def test_contains_rejects_outside_genomes() -> None:
    space = SPACES["student"]
    ok = StudentGenome(stages=(StageGene(8),))
    assert space.contains(ok)
    assert not space.contains(ok.with_stage(0, width=5))
    assert not space.contains(ok.with_stage(0, depth=4))
    assert not space.contains(ok.with_stage(0, kernel=7))
    assert not space.contains(ok.with_stage(0, activation="tanh"))
    assert not space.contains(StudentGenome(stages=(StageGene(8),) * 5))
    assert not space.contains(ok.replace(head=HeadGene(hidden=16)))
    assert not SPACES["student-small"].contains(ok.with_stage(0, skip=True))
    assert not space.contains(CHROMO)
    assert not SPACES["chromosome"].contains(ok)
    assert not SPACES["chromosome"].contains(CHROMO)  # 4 blocks, the space wants 5
    assert SearchSpace(encoding="chromosome", chromosome_blocks=4).contains(CHROMO)


def test_space_sample_respects_the_admissible_predicate() -> None:
    import numpy as np

    from evofusion.genome.space import SearchSpace

    space = SearchSpace(input_size=8, admissible=lambda g: all(s.width <= 8 for s in g.to_student().stages))
    rng = np.random.default_rng(0)
    genomes = [space.sample(rng) for _ in range(30)]
    assert all(space.admits(g) for g in genomes)
    assert SearchSpace(input_size=8) == SearchSpace(input_size=8, admissible=lambda g: True)  # not compared
