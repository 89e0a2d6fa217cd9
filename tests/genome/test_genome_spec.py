"""StudentGenome: validation names the bad field, JSON round trip, stable hash, spatial sizes."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
from typing import Any

import pytest

from evofusion.errors import ConfigError, GenomeError
from evofusion.genome.spec import MAX_FLATTEN_FEATURES, HeadGene, StageGene, StudentGenome, spatial_sizes

TWO = (StageGene(8), StageGene(16))


def _genome(**kw: Any) -> StudentGenome:
    base: dict[str, Any] = {"stages": TWO, "head": HeadGene(), "in_channels": 1, "input_size": 28,
                            "num_classes": 10}
    base.update(kw)
    return StudentGenome(**base)


def _stage(i: int, **changes: Any) -> tuple[StageGene, ...]:
    """TWO with stage ``i`` changed (StageGene itself does not validate; the genome does)."""
    stages = list(TWO)
    stages[i] = dataclasses.replace(stages[i], **changes)
    return tuple(stages)


BAD_GENOMES = [
    pytest.param({"stages": ()}, "stages", id="no-stages"),
    pytest.param({"stages": [StageGene(8)]}, "stages", id="stages-list-not-tuple"),
    pytest.param({"stages": tuple(StageGene(4) for _ in range(13))}, "stages", id="13-stages"),
    pytest.param({"stages": ({"width": 8},)}, "stages[0]", id="stage-not-gene"),
    pytest.param({"stages": _stage(0, width=0)}, "stages[0].width", id="width-0"),
    pytest.param({"stages": _stage(1, width=1025)}, "stages[1].width", id="width-1025"),
    pytest.param({"stages": _stage(0, width=True)}, "stages[0].width", id="width-bool"),
    pytest.param({"stages": _stage(0, width=8.0)}, "stages[0].width", id="width-float"),
    pytest.param({"stages": _stage(1, depth=0)}, "stages[1].depth", id="depth-0"),
    pytest.param({"stages": _stage(1, depth=9)}, "stages[1].depth", id="depth-9"),
    pytest.param({"stages": _stage(1, kernel=4)}, "stages[1].kernel", id="kernel-even"),
    pytest.param({"stages": _stage(1, kernel=11)}, "stages[1].kernel", id="kernel-11"),
    pytest.param({"stages": _stage(0, kernel=True)}, "stages[0].kernel", id="kernel-bool"),
    pytest.param({"stages": _stage(0, activation="swish")}, "stages[0].activation", id="activation"),
    pytest.param({"stages": _stage(1, pool="min")}, "stages[1].pool", id="pool"),
    pytest.param({"stages": _stage(0, skip=1)}, "stages[0].skip", id="skip-int"),
    pytest.param({"head": {"kind": "gap"}}, "head", id="head-not-gene"),
    pytest.param({"head": HeadGene(kind="mean")}, "head.kind", id="head-kind"),
    pytest.param({"head": HeadGene(hidden=-1)}, "head.hidden", id="hidden-negative"),
    pytest.param({"head": HeadGene(hidden=4097)}, "head.hidden", id="hidden-too-big"),
    pytest.param({"head": HeadGene(dropout=0.95)}, "head.dropout", id="dropout-too-big"),
    pytest.param({"head": HeadGene(dropout=-0.1)}, "head.dropout", id="dropout-negative"),
    pytest.param({"head": HeadGene(dropout=True)}, "head.dropout", id="dropout-bool"),
    pytest.param({"head": HeadGene(dropout="0.1")}, "head.dropout", id="dropout-str"),
    pytest.param({"stages": (StageGene(1024, pool="none"),), "head": HeadGene(kind="flatten")},
                 "head.kind", id="flatten-too-many-features"),
    pytest.param({"num_classes": 1}, "num_classes", id="one-class"),
    pytest.param({"num_classes": 2.0}, "num_classes", id="classes-float"),
    pytest.param({"in_channels": 0}, "in_channels", id="in-channels-0"),
    pytest.param({"in_channels": 65}, "in_channels", id="in-channels-65"),
    pytest.param({"input_size": 0}, "input_size", id="input-size-0"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_GENOMES)
def test_invalid_genome_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(GenomeError) as info:
        _genome(**changes)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


def test_with_stage_and_replace_revalidate() -> None:
    g = _genome()
    with pytest.raises(GenomeError) as info:
        g.with_stage(1, kernel=4)
    assert info.value.field == "stages[1].kernel"
    with pytest.raises(GenomeError) as info:
        g.replace(num_classes=0)
    assert info.value.field == "num_classes"
    assert g.with_stage(0, width=12).stages == (StageGene(12), StageGene(16))


def test_flatten_feature_limit_is_inclusive() -> None:
    # 1024 channels * 8 * 8 = 65536 features: exactly the limit is allowed
    g = StudentGenome(stages=(StageGene(1024, pool="none"),), head=HeadGene(kind="flatten"), input_size=8)
    assert g.stages[0].width * spatial_sizes(g)[-1] ** 2 == MAX_FLATTEN_FEATURES


def test_wrong_kind_is_rejected_at_construction() -> None:
    with pytest.raises(GenomeError) as info:
        _genome(kind="chromosome")
    assert info.value.field == "kind"


# --- from_dict -------------------------------------------------------------------------------------

FULL = {"stages": [{"width": 8, "depth": 2, "kernel": 5, "activation": "gelu", "pool": "avg", "skip": True},
                   {"width": 16}],
        "head": {"kind": "flatten", "hidden": 32, "dropout": 0.25},
        "in_channels": 3, "input_size": 16, "num_classes": 7, "kind": "student"}


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d.update(colour="red"), "colour"),
    (lambda d: d["stages"][1].update(dilation=2), "stages[1].dilation"),
    (lambda d: d["head"].update(bias=False), "head.bias"),
    (lambda d: d["stages"][0].pop("width"), "stages[0].width"),
    (lambda d: d.update(stages=[]), "stages"),
    (lambda d: d.update(stages={"width": 8}), "stages"),
    (lambda d: d.update(stages=[8]), "stages[0]"),
    (lambda d: d.update(head=[]), "head"),
    (lambda d: d.update(kind="chromosome"), "kind"),
    (lambda d: d["stages"][0].update(width="8"), "stages[0].width"),
    (lambda d: d["head"].update(dropout=2), "head.dropout"),
])
def test_from_dict_errors_name_the_key(mutate: Any, field: str) -> None:
    d = copy.deepcopy(FULL)
    mutate(d)
    with pytest.raises(GenomeError) as info:
        StudentGenome.from_dict(d)
    assert info.value.field == field


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(GenomeError) as info:
        StudentGenome.from_dict([1, 2])  # type: ignore[arg-type]
    assert info.value.field == "genome"


def test_from_dict_decodes_every_field_and_fills_defaults() -> None:
    g = StudentGenome.from_dict(FULL)
    assert g.stages == (StageGene(8, 2, 5, "gelu", "avg", True), StageGene(16, 1, 3, "relu", "max", False))
    assert g.head == HeadGene("flatten", 32, 0.25)
    assert (g.in_channels, g.input_size, g.num_classes, g.kind) == (3, 16, 7, "student")
    minimal = StudentGenome.from_dict({"stages": [{"width": 4}]})
    assert minimal == StudentGenome(stages=(StageGene(4),))


@pytest.mark.parametrize("g", [
    _genome(),
    StudentGenome.from_dict(FULL),
    StudentGenome(stages=(StageGene(4, 3, 7, "tanh", "none", True),), head=HeadGene("gap", 0, 0.5),
                  in_channels=3, input_size=32, num_classes=100),
])
def test_json_round_trip_is_equal(g: StudentGenome) -> None:
    back = StudentGenome.from_json(g.to_json())
    assert back == g
    assert back.hash == g.hash
    assert back.to_json() == g.to_json()
    assert StudentGenome.from_dict(g.to_dict()) == g


def test_to_json_is_canonical() -> None:
    text = _genome().to_json()
    assert " " not in text
    assert text.index('"head"') < text.index('"stages"')  # keys sorted


# --- hash ------------------------------------------------------------------------------------------

def test_hash_is_stable_across_processes() -> None:
    g = StudentGenome.from_dict(FULL)
    code = ("import sys; from evofusion.genome.spec import StudentGenome; "
            "print(StudentGenome.from_json(sys.argv[1]).hash)")
    out = subprocess.run([sys.executable, "-c", code, g.to_json()], capture_output=True, text=True,
                         check=True, timeout=120, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == g.hash
    assert len(g.hash) == 16 and int(g.hash, 16) >= 0


def test_hash_differs_between_genomes() -> None:
    base = _genome()
    variants = [base, base.with_stage(0, width=12), base.with_stage(1, kernel=5),
                base.with_stage(1, activation="gelu"), base.with_stage(0, pool="avg"),
                base.with_stage(0, skip=True), base.with_stage(0, depth=2),
                base.replace(head=HeadGene(dropout=0.1)), base.replace(head=HeadGene(hidden=8)),
                base.replace(num_classes=9), base.replace(in_channels=3), base.replace(input_size=32)]
    assert len({v.hash for v in variants}) == len(variants)
    assert _genome().hash == base.hash


# --- spatial sizes ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("input_size", "pools", "expected"), [
    (28, ("max", "avg", "max"), [14, 7, 3]),
    (28, ("none", "max", "none"), [28, 14, 14]),
    (8, ("max", "max", "max", "max", "avg"), [4, 2, 1, 1, 1]),
    (7, ("avg", "max"), [3, 1]),
    (1, ("max",), [1]),
    (2, ("max", "max"), [1, 1]),
])
def test_spatial_sizes(input_size: int, pools: tuple[str, ...], expected: list[int]) -> None:
    g = StudentGenome(stages=tuple(StageGene(4, pool=p) for p in pools), input_size=input_size)
    assert spatial_sizes(g) == expected
