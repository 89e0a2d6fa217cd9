"""Named feature taps of a student genome: serialization, hashes, validation, re-mapping on edits."""

from __future__ import annotations

import pytest

from evofusion.errors import GenomeError
from evofusion.genome import StageGene, StudentGenome, genome_from_json
from evofusion.genome.taps import resolve_location, tap_location


def _g(n: int, **kw: object) -> StudentGenome:
    return StudentGenome(stages=tuple(StageGene(8 * (i + 1)) for i in range(n)), **kw)  # type: ignore[arg-type]


def test_genome_without_taps_keeps_its_json_and_hash() -> None:
    g = StudentGenome(stages=(StageGene(8), StageGene(16)))
    assert "taps" not in g.to_dict()
    # the hash this genome had before the taps field existed (same JSON bytes)
    assert g.hash == "bb56f9e08fcb9749"


def test_taps_round_trip_and_canonical_order() -> None:
    a = _g(2, taps={"mid": "depth0.5", "feat": "features"})
    b = _g(2, taps=(("feat", "features"), ("mid", "depth0.5")))
    assert a == b and a.hash == b.hash
    assert a.to_dict()["taps"] == {"feat": "features", "mid": "depth0.5"}
    back = genome_from_json(a.to_json())
    assert back == a and back.hash == a.hash
    assert a.hash != _g(2).hash


@pytest.mark.parametrize("taps, field", [
    ({"x": "depth1.5"}, "taps.x"), ({"x": "stage-0"}, "taps.x"), ({"x": "conv"}, "taps.x"),
    ({"9bad": "features"}, "taps"), ({"x": 3}, "taps.x"),
])
def test_bad_taps_name_the_field(taps: dict, field: str) -> None:
    with pytest.raises(GenomeError) as e:
        _g(2, taps=taps)
    assert e.value.field == field


def test_from_dict_rejects_non_mapping_taps() -> None:
    d = _g(1).to_dict()
    d["taps"] = ["features"]
    with pytest.raises(GenomeError, match="taps"):
        StudentGenome.from_dict(d)


@pytest.mark.parametrize("loc, n, expected", [
    ("features", 3, None), ("last_stage", 3, 2), ("stage-1", 4, 3), ("stage-2", 4, 2), ("stage-9", 2, 0),
    ("depth0", 5, 0), ("depth0.5", 3, 1), ("depth0.5", 5, 2), ("depth1", 5, 4), ("stage1", 3, 1), ("stage7", 3, 2),
])
def test_locations_resolve_by_meaning(loc: str, n: int, expected: int | None) -> None:
    assert resolve_location(_g(n), loc) == expected


def test_taps_survive_adding_and_removing_stages() -> None:
    g = _g(3, taps={"mid": "depth0.5", "top": "last_stage"})
    grown = g.replace(stages=g.stages + (StageGene(64), StageGene(64)))
    shrunk = g.replace(stages=g.stages[:1])
    assert grown.taps == g.taps == shrunk.taps
    assert resolve_location(grown, tap_location(grown, "mid")) == 2
    assert resolve_location(grown, tap_location(grown, "top")) == 4
    assert resolve_location(shrunk, tap_location(shrunk, "mid")) == 0


def test_tap_location_accepts_names_or_locations() -> None:
    g = _g(2, taps={"mid": "depth0.5"})
    assert tap_location(g, "mid") == "depth0.5"
    assert tap_location(g, "last_stage") == "last_stage"
    with pytest.raises(GenomeError, match="mid"):
        tap_location(g, "nope")


def test_every_student_operator_keeps_the_taps() -> None:
    import numpy as np

    from evofusion.genome.space import SearchSpace
    from evofusion.operators import OPERATORS, create_operator

    space = SearchSpace()
    taps = {"mid": "depth0.5", "pen": "features"}
    for name in OPERATORS.names():
        op = create_operator(name, space)
        if op.genome_kind != "student":
            continue
        for seed in range(3):
            rng = np.random.default_rng(seed)
            parents = [space.sample(rng).replace(taps=taps) for _ in range(op.arity)]
            child = op.apply(*parents, np.random.default_rng(seed))
            assert dict(child.taps) == taps, name
            for loc in taps.values():
                idx = resolve_location(child, loc)
                assert idx is None or 0 <= idx < len(child.stages)
