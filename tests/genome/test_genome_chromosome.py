"""ChromosomeGenome decoding against the tables in chromosome.py's docstring, and its errors."""

from __future__ import annotations

from typing import Any

import pytest

from evofusion.errors import GenomeError
from evofusion.genome.chromosome import (
    ACTIVATION_TABLE,
    HEADER_BITS,
    KERNEL_TABLE,
    POOL_TABLE,
    ChromosomeGenome,
)
from evofusion.genome.spec import HeadGene, StageGene, StudentGenome, spatial_sizes

# bits 0-1 "10" -> m = 3 | 2 spacer | 3-4 "01" -> kernel 5 | 5 spacer | 6-7 "11" -> gelu | 8 spacer
# 9-10 "10" -> max pooling every 2nd block | 11 spacer | blocks "1011" -> single, double, single, single
HAND = "10" "1" "01" "0" "11" "1" "10" "0" "1011"


def test_tables_match_the_docstring() -> None:
    assert HEADER_BITS == 12
    assert KERNEL_TABLE == (3, 5, 7, 9)
    assert ACTIVATION_TABLE == ("relu", "leaky_relu", "elu", "gelu")
    assert POOL_TABLE == (("max", 1), ("avg", 1), ("max", 2), ("avg", 2))


def test_hand_chosen_bits_decode_field_by_field() -> None:
    c = ChromosomeGenome.from_string(HAND, base_width=4)
    assert c.n_blocks == 4
    assert c.bitstring() == HAND
    s = c.to_student()
    assert isinstance(s, StudentGenome)
    # width = base_width * m * 2**(i // 2) = 4 * 3 * (1, 1, 2, 2)
    assert [st.width for st in s.stages] == [12, 12, 24, 24]
    assert [st.kernel for st in s.stages] == [5] * 4
    assert [st.activation for st in s.stages] == ["gelu"] * 4
    assert [st.pool for st in s.stages] == ["none", "max", "none", "max"]
    assert [st.depth for st in s.stages] == [1, 2, 1, 1]
    assert not any(st.skip for st in s.stages)
    assert s.head == HeadGene(kind="gap")
    assert (s.in_channels, s.input_size, s.num_classes) == (1, 28, 10)
    assert spatial_sizes(s) == [28, 14, 14, 7]


@pytest.mark.parametrize(("mult_bits", "mult"), [("00", 1), ("01", 2), ("10", 3), ("11", 4)])
def test_multiplier(mult_bits: str, mult: int) -> None:
    s = ChromosomeGenome.from_string(mult_bits + HAND[2:], base_width=5).to_student()
    assert [st.width for st in s.stages] == [5 * mult, 5 * mult, 10 * mult, 10 * mult]


@pytest.mark.parametrize(("code", "kernel"), [("00", 3), ("01", 5), ("10", 7), ("11", 9)])
def test_kernel_table(code: str, kernel: int) -> None:
    bits = HAND[:3] + code + HAND[5:]
    assert {st.kernel for st in ChromosomeGenome.from_string(bits).to_student().stages} == {kernel}


@pytest.mark.parametrize(("code", "act"), [("00", "relu"), ("01", "leaky_relu"), ("10", "elu"),
                                           ("11", "gelu")])
def test_activation_table(code: str, act: str) -> None:
    bits = HAND[:6] + code + HAND[8:]
    assert {st.activation for st in ChromosomeGenome.from_string(bits).to_student().stages} == {act}


@pytest.mark.parametrize(("code", "pools"), [
    ("00", ["max"] * 6),
    ("01", ["avg"] * 6),
    ("10", ["none", "max"] * 3),
    ("11", ["none", "avg"] * 3),
])
def test_pool_every_kth_block(code: str, pools: list[str]) -> None:
    bits = HAND[:9] + code + HAND[11:12] + "111111"
    s = ChromosomeGenome.from_string(bits, input_size=64).to_student()
    assert [st.pool for st in s.stages] == pools


def test_block_bits_single_or_double_conv() -> None:
    s = ChromosomeGenome.from_string(HAND[:12] + "01100").to_student()
    assert [st.depth for st in s.stages] == [2, 1, 1, 2, 2]


def test_spacers_are_ignored() -> None:
    flipped = list(HAND)
    for i in (2, 5, 8, 11):
        flipped[i] = "1" if flipped[i] == "0" else "0"
    a = ChromosomeGenome.from_string(HAND)
    b = ChromosomeGenome.from_string("".join(flipped))
    assert a.to_student() == b.to_student()
    assert a != b and a.hash != b.hash  # the spacer bits are kept


def test_widths_capped_at_max_width() -> None:
    bits = "11" + HAND[2:12] + "1111111"  # m = 4, 7 blocks: 16 16 32 32 64 64 128
    assert [st.width for st in ChromosomeGenome.from_string(bits).to_student().stages] == \
        [16, 16, 32, 32, 64, 64, 128]
    capped = ChromosomeGenome.from_string(bits, max_width=40).to_student()
    assert [st.width for st in capped.stages] == [16, 16, 32, 32, 40, 40, 40]


def test_task_fields_and_head_pass_through() -> None:
    s = ChromosomeGenome.from_string(HAND, in_channels=3, input_size=32, num_classes=100,
                                     head="flatten").to_student()
    assert (s.in_channels, s.input_size, s.num_classes, s.head.kind) == (3, 32, 100, "flatten")


@pytest.mark.parametrize(("kw", "field"), [
    ({"bits": tuple([0] * 12)}, "bits"),
    ({"bits": ()}, "bits"),
    ({"bits": [0] * 13}, "bits"),
    ({"bits": "0" * 13}, "bits"),
    ({"bits": (0,) * 12 + (2,)}, "bits"),
    ({"bits": (0,) * 12 + (-1,)}, "bits"),
    ({"bits": (True,) + (0,) * 12}, "bits"),
    ({"bits": (0,) * 13, "base_width": 0}, "base_width"),
    ({"bits": (0,) * 13, "base_width": 257}, "base_width"),
    ({"bits": (0,) * 13, "max_width": 1025}, "max_width"),
    ({"bits": (0,) * 13, "head": "mean"}, "head.kind"),
    ({"bits": (0,) * 13, "num_classes": 1}, "num_classes"),
])
def test_bad_chromosome_names_the_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(GenomeError) as info:
        ChromosomeGenome(**kw)
    assert info.value.field == field


@pytest.mark.parametrize("s", ["", "0101", "0" * 12, "0" * 12 + "2", "01x0" * 4, "0 1" * 6])
def test_bad_bit_strings_name_bits(s: str) -> None:
    with pytest.raises(GenomeError) as info:
        ChromosomeGenome.from_string(s)
    assert info.value.field == "bits"


def test_flatten_head_too_large_is_rejected() -> None:
    # 1 block, pooling every 2nd block -> no pooling; 16 * 4 channels * 64 * 64 > 65536 features
    with pytest.raises(GenomeError) as info:
        ChromosomeGenome.from_string("11" + HAND[2:9] + "10" + "0" + "1", base_width=16, input_size=64,
                                     head="flatten")
    assert info.value.field == "head.kind"


def test_json_round_trip() -> None:
    c = ChromosomeGenome.from_string(HAND, base_width=8, max_width=64, in_channels=3, input_size=32,
                                     num_classes=5, head="flatten")
    back = ChromosomeGenome.from_dict(c.to_dict())
    assert back == c and back.hash == c.hash
    assert c.to_dict()["bits"] == HAND and c.to_dict()["kind"] == "chromosome"
    assert c.hash != ChromosomeGenome.from_string(HAND).hash


def test_from_dict_requires_bit_string() -> None:
    with pytest.raises(GenomeError) as info:
        ChromosomeGenome.from_dict({"kind": "chromosome", "bits": [1] * 13})
    assert info.value.field == "bits"


def test_decoded_stage_genes() -> None:
    s = ChromosomeGenome.from_string("00" "0" "00" "0" "00" "0" "00" "0" "10").to_student()
    assert s.stages == (StageGene(4, 1, 3, "relu", "max", False), StageGene(4, 2, 3, "relu", "max", False))
