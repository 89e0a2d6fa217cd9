"""Feature KD inside the one training loop: identical without terms, adapters trained, growth followed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evofusion.distill import TrainConfig, train
from evofusion.distill.cdka import FeatureKD, FeatureTerm, student_tap_spec
from evofusion.errors import ConfigError
from evofusion.genome import HeadGene, StageGene, StudentGenome, build
from evofusion.teachers import Teacher, build_teacher
from evofusion.teachers.features import TeacherTap, teacher_features

G = StudentGenome(stages=(StageGene(4), StageGene(6), StageGene(8)), input_size=8, num_classes=4,
                  head=HeadGene(hidden=5), taps={"mid": "depth0.5"})


@pytest.fixture(scope="module")
def data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 8, 8, generator=g)
    y = torch.randint(0, 4, (64,), generator=g)
    torch.manual_seed(0)
    t = Teacher(build_teacher("small_cnn", in_channels=1, num_classes=4, input_size=8, width=0.25))
    conv4, att5, pen = teacher_features(t, x, [TeacherTap("features.conv4", "pool", 2),
                                               TeacherTap("features.conv5", "attention", 2), TeacherTap("classifier:in")])
    return {"x": x, "y": y, "logits": t.predict(x), "conv4": conv4.half().numpy(), "att5": att5.numpy(), "pen": pen}


CFG = TrainConfig(steps=6, batch_size=16)


def _model() -> nn.Module:
    torch.manual_seed(1)
    return build(G)


def test_no_terms_is_exactly_plain_kd(data: dict) -> None:
    a, b = _model(), _model()
    train(a, data["x"], data["y"], CFG, teacher_logits=data["logits"], generator=torch.Generator().manual_seed(2))
    fk = FeatureKD([])
    train(b, data["x"], data["y"], CFG, teacher_logits=data["logits"], generator=torch.Generator().manual_seed(2),
          feature_kd=fk)
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=n)
    assert len(fk.adapters) == 0


def test_student_taps_resolve_to_modules() -> None:
    m = build(G)
    assert student_tap_spec(m, "mid") == ("stages.1", "out")
    assert student_tap_spec(m, "last_stage") == ("stages.2", "out")
    assert student_tap_spec(m, "features") == ("head.4", "in")  # the hidden layer's output, before the classifier
    plain = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten())
    assert student_tap_spec(plain, "0") == ("0", "out")


@pytest.mark.parametrize("term", [
    dict(student_tap="mid", key="conv4", loss="mse"),
    dict(student_tap="mid", key="conv4", loss="cosine", direction="teacher"),
    dict(student_tap="last_stage", key="att5", loss="at", weight=100.0),
    dict(student_tap="features", key="pen", loss="cka"),
    dict(student_tap="features", key="pen", loss="mse", adapter="linear"),
])
def test_feature_terms_train_student_and_adapters(data: dict, term: dict) -> None:
    term = dict(term)
    t = FeatureTerm(teacher=data[term.pop("key")], **term)
    fk = FeatureKD([t])
    m, ref = _model(), _model()
    rep = train(m, data["x"], data["y"], CFG, teacher_logits=data["logits"], feature_kd=fk,
                generator=torch.Generator().manual_seed(2))
    train(ref, data["x"], data["y"], CFG, teacher_logits=data["logits"], generator=torch.Generator().manual_seed(2))
    assert all(torch.isfinite(torch.tensor(v)) for v in rep.loss_history)
    assert fk.last[t.name] > 0 and "kd" in fk.last
    changed = any(not torch.equal(p, q) for p, q in zip(m.state_dict().values(), ref.state_dict().values(), strict=True))
    assert changed  # the feature term moved the student
    if t.loss in ("at", "cka"):
        assert len(fk.adapters) == 0
    else:
        assert len(fk.adapters) == 1
        for p in fk.adapters.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all()


def test_adapter_parameters_are_optimized(data: dict) -> None:
    fk = FeatureKD([FeatureTerm("mid", teacher=data["conv4"], loss="mse")])
    m = _model()
    opt = torch.optim.AdamW(m.parameters(), lr=0.1)
    fk.attach(m, opt, data["x"][:2], 0.0)
    before = [p.detach().clone() for p in fk.adapters.parameters()]
    assert len(opt.param_groups) == 2
    idx = torch.arange(8)
    _, loss = fk(m, data["x"][idx], data["y"][idx], idx, data["logits"][idx], 0.5, 4.0)
    loss.backward()
    opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, fk.adapters.parameters(), strict=True))


def test_adapter_follows_a_widened_student(data: dict) -> None:
    fk = FeatureKD([FeatureTerm("mid", teacher=data["conv4"], loss="mse")])
    m = _model()
    opt = torch.optim.AdamW(m.parameters(), lr=0.01)
    fk.attach(m, opt, data["x"][:2], 0.0)
    assert fk.adapters["0"].src[0] == 6
    wide = build(G.with_stage(1, width=9))
    idx = torch.arange(8)
    _, loss = fk(wide, data["x"][idx], data["y"][idx], idx, None, 0.5, 4.0)
    loss.backward()
    assert fk.adapters["0"].src[0] == 9
    assert opt.param_groups[-1]["params"] == list(fk.adapters.parameters())
    opt.step()


def test_text_table_term_and_extra_teachers(data: dict) -> None:
    table = torch.randn(4, 12)
    fk = FeatureKD([FeatureTerm("features", table=table, loss="contrastive")],
                   extra_logits=[data["logits"] * 0.5], teacher_weights=[1.0, 2.0], weighting="confidence")
    rep = train(_model(), data["x"], data["y"], CFG, teacher_logits=data["logits"], feature_kd=fk,
                generator=torch.Generator().manual_seed(2))
    assert rep.steps == 6 and fk.adapters["0"].dst == (12,)


def test_bad_terms_name_the_field(data: dict) -> None:
    with pytest.raises(ConfigError, match="loss"):
        FeatureTerm("mid", teacher=data["conv4"], loss="l3")
    with pytest.raises(ConfigError, match="contrastive"):
        FeatureTerm("mid", teacher=data["conv4"], loss="contrastive")
    with pytest.raises(ConfigError, match="teacher"):
        FeatureTerm("mid")
    with pytest.raises(ConfigError, match="weighting"):
        FeatureKD([], weighting="loudest")
    with pytest.raises(ConfigError, match="teacher weights"):
        FeatureKD([], extra_logits=[data["logits"]], teacher_weights=[1.0])
    fk = FeatureKD([FeatureTerm("mid", teacher=data["conv4"][:10])])
    with pytest.raises(ValueError, match="rows"):
        train(_model(), data["x"], data["y"], CFG, feature_kd=fk)
    fk = FeatureKD([FeatureTerm("mid", teacher=data["pen"], loss="mse", adapter="conv1x1")])
    with pytest.raises(ConfigError, match=r"features\[0\].adapter"):
        train(_model(), data["x"], data["y"], CFG, feature_kd=fk)


def test_rebind_moves_adapters_and_their_state_to_a_new_optimizer(data: dict) -> None:
    fk = FeatureKD([FeatureTerm("mid", teacher=data["conv4"], loss="mse")])
    m = _model()
    opt = torch.optim.AdamW(m.parameters(), lr=0.01)
    fk.attach(m, opt, data["x"][:2], 0.0)
    idx = torch.arange(8)
    _, loss = fk(m, data["x"][idx], data["y"][idx], idx, None, 0.5, 4.0)
    loss.backward()
    opt.step()
    new = torch.optim.AdamW(m.parameters(), lr=0.01)
    fk.rebind(new, 0.0)
    p = next(fk.adapters.parameters())
    assert any(p is q for q in new.param_groups[-1]["params"])
    assert torch.equal(new.state[p]["exp_avg"], opt.state[p]["exp_avg"])
