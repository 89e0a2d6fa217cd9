"""bit_flip and one_point against hand-computed results with a fixed rng."""

from __future__ import annotations

import numpy as np
import pytest

from evofusion.errors import ConfigError
from evofusion.genome.chromosome import ChromosomeGenome
from evofusion.genome.space import SearchSpace
from evofusion.operators import create_operator

SPACE = SearchSpace(encoding="chromosome", chromosome_blocks=4)
BITS = "0110" "1001" "0100" "1010"  # 12 header bits + 4 block bits


def _g(bits: str = BITS, **kw: object) -> ChromosomeGenome:
    return ChromosomeGenome.from_string(bits, **kw)  # type: ignore[arg-type]


def test_bit_flip_p1_flips_every_bit_and_keeps_fields() -> None:
    parent = _g(base_width=8, max_width=64, in_channels=3, input_size=32, num_classes=5)
    child, info = create_operator("bit_flip", SPACE, p=1.0).apply_with_info(
        parent, rng=np.random.default_rng(0))
    assert child.bitstring() == "1001" "0110" "1011" "0101"
    assert info == {"flipped": list(range(16))}
    assert (child.base_width, child.max_width, child.in_channels, child.input_size,
            child.num_classes, child.head) == (8, 64, 3, 32, 5, "gap")


def test_bit_flip_p0_still_flips_exactly_one_bit() -> None:
    parent = _g()
    for seed in range(10):
        child, info = create_operator("bit_flip", SPACE, p=0.0).apply_with_info(
            parent, rng=np.random.default_rng(seed))
        diff = [i for i, (x, y) in enumerate(zip(parent.bits, child.bits, strict=True)) if x != y]
        assert diff == info["flipped"] and len(diff) == 1


def test_bit_flip_default_rate_matches_hand_computation() -> None:
    parent = _g()
    child, info = create_operator("bit_flip", SPACE).apply_with_info(parent, rng=np.random.default_rng(3))
    draws = np.random.default_rng(3).random(16) < 1 / 16
    expected = [i for i in range(16) if draws[i]] or None
    if expected is not None:
        assert info["flipped"] == expected
    flipped = set(info["flipped"])
    assert child.bits == tuple(1 - b if i in flipped else b for i, b in enumerate(parent.bits))


def _valid(bits: tuple[int, ...], **kw: object) -> bool:
    try:
        ChromosomeGenome(bits=bits, **kw)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def test_bit_flip_redraws_invalid_children() -> None:
    # 64 channels * 32 * 32 = 65536 flatten features: exactly at the limit, so many flips overflow it
    fields = {"base_width": 64, "max_width": 1024, "input_size": 64, "head": "flatten"}
    parent = ChromosomeGenome.from_string("000000000000" "1", **fields)  # type: ignore[arg-type]
    op = create_operator("bit_flip", SearchSpace(encoding="chromosome", chromosome_blocks=1), p=0.5)
    redrawn = 0
    for seed in range(30):
        child, info = op.apply_with_info(parent, rng=np.random.default_rng(seed))
        if info.get("noop"):
            continue
        assert child.head == "flatten" and child.base_width == 64
        first = np.random.default_rng(seed).random(13) < 0.5
        first_bits = tuple(1 - b if f else b for b, f in zip(parent.bits, first, strict=True))
        if first.any() and not _valid(first_bits, **fields):
            redrawn += 1
            assert child.bits != first_bits
    assert redrawn > 0


def test_bit_flip_noop_when_every_child_is_invalid() -> None:
    parent = ChromosomeGenome.from_string("000000000000" "1", base_width=64, max_width=1024,
                                          input_size=64, head="flatten")  # 64*32*32 = 65536: at the limit
    op = create_operator("bit_flip", SearchSpace(encoding="chromosome", chromosome_blocks=1), p=1.0)
    # all-flipped: multiplier 4 -> 256 channels, no pooling on block 1 -> 256*64*64 features: invalid
    child, info = op.apply_with_info(parent, rng=np.random.default_rng(0))
    assert info == {"noop": True}
    assert child is parent


def test_one_point_matches_cut() -> None:
    a, b = _g("0" * 16), _g("1" * 16, base_width=16)
    op = create_operator("one_point", SPACE)
    for seed in range(10):
        child, info = op.apply_with_info(a, b, rng=np.random.default_rng(seed))
        cut = info["cut"]
        assert cut == int(np.random.default_rng(seed).integers(1, 16))
        assert 1 <= cut <= 15
        assert child.bitstring() == "0" * cut + "1" * (16 - cut)
        assert child.base_width == a.base_width


def test_one_point_keeps_first_parent_length() -> None:
    a, b = _g("0" * 16), _g("1" * 14)
    child, info = create_operator("one_point", SPACE).apply_with_info(a, b, rng=np.random.default_rng(1))
    cut = info["cut"]
    assert 1 <= cut <= 13
    assert child.bitstring() == "0" * cut + "1" * (14 - cut) + "00"


@pytest.mark.parametrize("p", [-0.1, 1.5, True, "x"])
def test_bit_flip_rejects_bad_rate(p: object) -> None:
    with pytest.raises(ConfigError, match="p"):
        create_operator("bit_flip", SPACE, p=p)
