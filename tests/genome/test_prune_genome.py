"""PruneGenome: validation naming the field, JSON round trip, stable hash, decoding of every encoding."""

from __future__ import annotations

import numpy as np
import pytest

from evofusion.errors import GenomeError
from evofusion.genome.io import genome_from_dict, genome_from_json
from evofusion.genome.prune import PruneGenome


def _g(**kw: object) -> PruneGenome:
    base: dict = {"teacher": "abc", "arch": "small_cnn", "groups": (4, 6), "genes": (1, 0, 1, 0, 0, 0, 1, 1, 0, 1)}
    base.update(kw)
    return PruneGenome(**base)  # type: ignore[arg-type]


def test_round_trip_and_stable_hash() -> None:
    g = _g()
    assert genome_from_json(g.to_json()) == g
    assert genome_from_dict(g.to_dict()).hash == g.hash
    assert g.to_dict()["genes"] == "1010001101"
    assert g.hash == _g().hash and g.hash != _g(genes=(1,) * 10).hash
    layer = _g(encoding="layer", levels=4, genes=(2, 4))
    assert genome_from_json(layer.to_json()) == layer
    assert layer.to_dict()["genes"] == [2, 4]


@pytest.mark.parametrize(("kw", "field"), [
    ({"genes": (1, 0)}, "genes"),
    ({"genes": (2,) * 10}, "genes"),
    ({"encoding": "bogus"}, "encoding"),
    ({"groups": ()}, "groups"),
    ({"levels": 0}, "levels"),
    ({"encoding": "layer", "levels": 4, "genes": (0, 4)}, "genes"),
])
def test_invalid_genomes_name_the_field(kw: dict, field: str) -> None:
    with pytest.raises(GenomeError) as e:
        _g(**kw)
    assert e.value.field == field


def test_channel_masks_and_at_least_one_kept() -> None:
    g = _g()
    m = g.keep_masks()
    assert m[0].tolist() == [True, False, True, False]
    assert m[1].tolist() == [False, False, True, True, False, True]
    empty = _g(genes=(0,) * 10)
    ranks = [np.array([3, 2, 1, 0]), np.array([5, 4, 3, 2, 1, 0])]
    m = empty.keep_masks(ranks)  # an emptied group keeps its most important channel
    assert m[0].tolist() == [False, False, False, True]
    assert m[1].tolist() == [False] * 5 + [True]
    assert empty.kept_fraction() == pytest.approx(2 / 10)


def test_block_and_layer_decode_follow_the_ranking() -> None:
    ranks = [np.array([3, 2, 1, 0]), np.array([0, 1, 2, 3, 4, 5])]
    block = _g(encoding="block", levels=2, genes=(1, 0, 0, 1))  # 2 chunks per group
    m = block.keep_masks(ranks)
    assert m[0].tolist() == [False, False, True, True]  # chunk 0 = channels 3, 2
    assert m[1].tolist() == [False, False, False, True, True, True]
    layer = _g(encoding="layer", levels=4, genes=(1, 2))  # keep 1/4 and 2/4
    m = layer.keep_masks(ranks)
    assert m[0].tolist() == [False, False, False, True]
    assert m[1].tolist() == [True, True, True, False, False, False]
    assert PruneGenome.gene_count("block", (4, 6), 8) == 10
