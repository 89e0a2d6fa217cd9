"""CDKA through the config: searches, finals and single distillations with feature KD and text teachers."""

from __future__ import annotations

from pathlib import Path

import pytest

from evofusion import Study
from evofusion.config import config_diff, validate_config
from evofusion.engine.distill_run import distill_genome
from evofusion.engine.feature_kd import feature_kd_from_spec, parse_feature_option
from evofusion.errors import ConfigError
from evofusion.export import load_student
from evofusion.genome import StageGene, StudentGenome
from tests.conftest import tiny_config

FEATURES = [{"teacher_tap": "features.conv4", "student_tap": "last_stage", "loss": "mse"},
            {"teacher_tap": "features.conv5", "student_tap": "depth0", "loss": "at", "weight": 100}]
QUIET = {"log": lambda *_: None}


def test_search_with_feature_kd_and_text_teacher(tmp_path: Path) -> None:
    cfg = tiny_config(**{"distill.features": FEATURES, "distill.text_teacher": {"model": "wordllama"},
                         "distill.teacher_weighting": "confidence", "generations": 1})
    study = Study.create(cfg, tmp_path / "run", **QUIET)
    try:
        spec = study.setup.context.extra["feature_kd"]
        assert len(spec["terms"]) == 3 and len(spec["terms"][2]["table"]) == 10
        assert "features" not in study.setup.context.train  # the TrainConfig part stays as before
        study.optimize()
        assert study.store.count("COMPLETE") == 4
        finals = study.finalize(**QUIET)
        assert len(finals) == 1
    finally:
        study.close()
    fk = feature_kd_from_spec(spec)
    assert fk is not None and [t.loss for t in fk.terms] == ["mse", "at", "contrastive"]
    flipped = feature_kd_from_spec(spec, spatial=False)  # the final fine-tune augments with flips
    assert flipped is not None and [t.loss for t in flipped.terms] == ["contrastive"]


def test_no_cdka_keys_change_nothing(tmp_path: Path) -> None:
    cfg = validate_config(tiny_config())
    old = tiny_config()  # a stored config of a run made before CDKA existed lacks these keys
    stored = validate_config(old).to_dict()
    for k in ("features", "teachers", "teacher_weight", "teacher_weighting", "text_teacher"):
        stored["distill"].pop(k)
    assert config_diff(stored, cfg.to_dict()) == []
    study = Study.create(cfg, tmp_path / "run", **QUIET)
    try:
        assert study.setup.context.extra == {}
    finally:
        study.close()


@pytest.mark.parametrize("over, field", [
    ({"distill.features": [{"teacher_tap": "features.conv4", "loss": "l9"}]}, "distill.features.0.loss"),
    ({"distill.features": [{"teacher_tap": "features.conv4", "teacher": 1}]}, "distill.features.0.teacher"),
    ({"distill.features": [{"teacher_tap": "features.conv4", "adapter": "mlp"}]}, "distill.features.0.adapter"),
    ({"distill.features": [{"student_tap": "features"}]}, "distill.features.0.teacher_tap"),
    ({"distill.text_teacher": {"model": "gpt"}}, "distill.text_teacher.model"),
    ({"distill.teachers": [{"path": "/nonexistent/teacher"}]}, "distill.teachers.0.path"),
    ({"distill.features": [{"teacher_tap": "features.conv4"}], "distill.augment": "flip"}, "distill.augment"),
    ({"distill.features": [{"teacher_tap": "features.conv4"}], "teacher.enabled": False}, "teacher.enabled"),
])
def test_bad_cdka_config_names_the_key(over: dict, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        validate_config(tiny_config(**over))
    assert e.value.field == field


def test_unknown_teacher_tap_fails_before_the_run_dir_exists(tmp_path: Path) -> None:
    cfg = tiny_config(**{"distill.features": [{"teacher_tap": "features.conv42"}]})
    with pytest.raises(ConfigError, match="distill.features.0.teacher_tap.*features.conv4"):
        Study.create(cfg, tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()


def test_distill_one_genome_with_two_teachers(tmp_path: Path) -> None:
    base = tiny_config(**{"distill.steps": 8})
    # a second teacher: the zoo teacher of a first run, used as an extra logit teacher
    first = distill_genome(StudentGenome(stages=(StageGene(4),), input_size=8), base, **QUIET)
    assert 0 <= first["test_accuracy"] <= 1 and not first["feature_kd"]
    zoo = next(Path(p) for p in Path(__import__("os").environ["EVOFUSION_CACHE"]).glob("zoo/digits-*"))
    cfg = tiny_config(**{"distill.steps": 8, "distill.features": FEATURES[:1],
                         "distill.teachers": [{"path": str(zoo), "weight": 0.5}]})
    g = StudentGenome(stages=(StageGene(4), StageGene(8)), input_size=8, taps={"top": "last_stage"})
    res = distill_genome(g, cfg, out_dir=tmp_path / "s", seed=3, **QUIET)
    assert res["feature_kd"] and res["adapter_params"] > 0 and "mse:last_stage" in res["loss_terms"]
    model = load_student(tmp_path / "s")
    assert sum(p.numel() for p in model.parameters()) == res["params"]  # adapters are not exported
    with pytest.raises(ConfigError, match="genome"):
        distill_genome(StudentGenome(stages=(StageGene(4),)), base, **QUIET)  # 28x28 genome, 8x8 data


def test_parse_feature_option() -> None:
    assert parse_feature_option("teacher_tap=layer3, loss=cka,weight=0.5") == \
        {"teacher_tap": "layer3", "loss": "cka", "weight": 0.5}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_feature_option("teacher_tap")
    with pytest.raises(ConfigError, match="teacher_tap"):
        parse_feature_option("loss=mse")
