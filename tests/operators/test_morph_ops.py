"""Function-preserving morphs: child == parent elementwise in eval mode, shapes changed as intended.

Parametrized over every operator registered with ``preserves_function = True`` (a new one is tested
the day it is registered) and over conv, linear-head, residual and BatchNorm-bearing students.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from evofusion.genome.build import build
from evofusion.genome.space import SearchSpace
from evofusion.genome.spec import HeadGene, StageGene, StudentGenome
from evofusion.layers.blocks import BlendActivation
from evofusion.operators import OPERATORS, create_operator
from evofusion.operators.morph import MorphOperator, apply_plan, function_damage, morph, params_of

SPACE = SearchSpace(input_size=16, max_stages=4, widths=(4, 6, 8, 12, 16), kernels=(3, 5, 7), max_depth=4,
                    activations=("relu", "gelu", "silu", "hardswish"),
                    head_hidden=(0, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512))
T = dict(in_channels=2, input_size=16, num_classes=5)

STUDENTS = {
    "conv": StudentGenome(stages=(StageGene(4, activation="relu"), StageGene(6, activation="gelu", pool="avg")), **T),
    "linear": StudentGenome(stages=(StageGene(4, kernel=5, pool="max"),),
                            head=HeadGene(kind="gap", hidden=8, dropout=0.2), **T),
    "residual": StudentGenome(stages=(StageGene(4, depth=2, skip=True), StageGene(4, depth=2, skip=True),
                                      StageGene(8, activation="silu", skip=True, pool="none")), **T),
    "bn_flatten": StudentGenome(stages=(StageGene(6, depth=2, activation="relu"),
                                        StageGene(4, activation="hardswish", pool="max")),
                                head=HeadGene(kind="flatten"), **T),
}

PRESERVING = [n for n in OPERATORS.names()
              if getattr(OPERATORS.get(n), "preserves_function", False)
              and create_operator(n, SPACE).genome_kind == "student"]


def _trained(genome: StudentGenome, seed: int = 0) -> nn.Module:
    """A student with non-trivial weights and BatchNorm statistics (a few SGD steps)."""
    torch.manual_seed(seed)
    m = build(genome)
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    for _ in range(3):
        x = torch.randn(16, genome.in_channels, genome.input_size, genome.input_size) * 2 + 0.5
        loss = m(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.normal_(0, 0.3)
    return m.eval()


def test_every_preserving_operator_is_a_morph() -> None:
    assert set(PRESERVING) >= {"fp_widen", "fp_widen_head", "fp_deepen", "fp_deepen_head", "fp_skip",
                               "fp_kernel", "fp_activation"}
    for n in PRESERVING:
        assert isinstance(create_operator(n, SPACE), MorphOperator), f"{n} has no weight transform"


@pytest.mark.parametrize("name", PRESERVING)
@pytest.mark.parametrize("student", sorted(STUDENTS))
def test_child_outputs_equal_parent(name: str, student: str) -> None:
    g = STUDENTS[student]
    parent = _trained(g)
    op = create_operator(name, SPACE)
    edits = op.edits(g, np.random.default_rng(0))
    calib = torch.randn(32, 2, 16, 16)
    for child_g, info in edits:
        child = op.transfer(parent, child_g, info, np.random.default_rng(1), noise=0.0, calib=calib).eval()
        assert child.genome == child_g
        for b in range(3):
            x = torch.randn(8, 2, 16, 16, generator=torch.Generator().manual_seed(b)) * (1 + b)
            torch.testing.assert_close(child(x), parent(x), atol=1e-5, rtol=1e-5)
        n_parent = sum(p.numel() for p in parent.parameters())
        n_child = sum(p.numel() for p in child.parameters())
        assert n_child == params_of(child_g) > n_parent, (name, info)
        _check_intended(name, g, child_g, info, child)


def _check_intended(name: str, g: StudentGenome, c: StudentGenome, info: dict, child: nn.Module) -> None:
    i = info.get("stage", -1)
    if name == "fp_widen":
        assert c.stages[i].width == info["new"] > g.stages[i].width
        assert all(b[0].out_channels == info["new"] for b in child.stages[i].blocks)
    elif name == "fp_deepen":
        assert len(child.stages[i].blocks) == g.stages[i].depth + 1 == c.stages[i].depth
    elif name == "fp_kernel":
        assert all(b[0].kernel_size == (info["new"], info["new"]) for b in child.stages[i].blocks)
    elif name == "fp_skip":
        assert c.stages[i].skip and child.stages[i].gate is not None and float(child.stages[i].gate.detach()) == 0.0
    elif name == "fp_activation":
        assert all(isinstance(b[2], BlendActivation) and float(b[2].mix.detach()) == 0.0 for b in child.stages[i].blocks)
    elif name in ("fp_widen_head", "fp_deepen_head"):
        assert child.head[2].out_features == c.head.hidden == info["new"] > g.head.hidden


def test_each_student_has_edits_for_most_operators() -> None:
    # guards against a parametrized test passing only because no edit applied
    for name in PRESERVING:
        n = sum(len(create_operator(name, SPACE).edits(g, np.random.default_rng(0))) for g in STUDENTS.values())
        assert n >= 1, name


def test_widen_is_net2wider_hand_computed() -> None:
    g = StudentGenome(stages=(StageGene(4, pool="none"),), in_channels=1, input_size=4, num_classes=2)
    parent = _trained(g)
    child_g = g.with_stage(0, width=6)
    op = create_operator("fp_widen", SearchSpace(input_size=4, num_classes=2, widths=(4, 6)))
    child = op.transfer(parent, child_g, {"stage": 0, "old": 4, "new": 6}, np.random.default_rng(3))
    # the rng picks which channels are copied: recover them and check the split of the next layer
    w_p, w_c = parent.stages[0].blocks[0][0].weight, child.stages[0].blocks[0][0].weight
    src = [int(torch.nonzero((w_p == w_c[j]).all(dim=(1, 2, 3)))[0]) for j in range(6)]
    assert src[:4] == [0, 1, 2, 3]
    lin_p, lin_c = parent.head[-1].weight, child.head[-1].weight
    shares = lin_c[:, :] / lin_p[:, src]  # each copy carries a share of the original's weights
    assert torch.allclose(shares, shares[:1].expand_as(shares), atol=1e-5)  # one share per column
    per_unit = torch.zeros(4).index_add_(0, torch.tensor(src), shares[0])
    torch.testing.assert_close(per_unit, torch.ones(4))  # the shares of one unit's copies sum to 1
    copied = [j for j in range(4) if src.count(j) > 1]
    assert copied and all(shares[0, j] < 1 for j in copied)
    # unequal shares break the symmetry between copies (equal ones would get equal gradients forever)
    dup = next(j for j in range(4, 6))
    assert not torch.isclose(shares[0, dup], shares[0, src[dup]])
    bn_p, bn_c = parent.stages[0].blocks[0][1], child.stages[0].blocks[0][1]
    torch.testing.assert_close(bn_c.running_var, bn_p.running_var[src])


def test_noise_breaks_symmetry_but_stays_close() -> None:
    g = STUDENTS["conv"]
    parent = _trained(g)
    op = create_operator("fp_widen", SPACE)
    child_g, info = op.edits(g, np.random.default_rng(0))[0]
    exact = op.transfer(parent, child_g, info, np.random.default_rng(1)).eval()
    noisy = op.transfer(parent, child_g, info, np.random.default_rng(1), noise=0.01).eval()
    x = torch.randn(8, 2, 16, 16)
    d = (noisy(x) - exact(x)).abs().max()
    assert 0 < d < 0.5 * exact(x).abs().max()


def test_transfer_is_deterministic_given_rng() -> None:
    g = STUDENTS["residual"]
    parent = _trained(g)
    op = create_operator("fp_widen", SPACE)
    child_g, info = op.edits(g, np.random.default_rng(0))[-1]
    a = op.transfer(parent, child_g, info, np.random.default_rng(5)).state_dict()
    b = op.transfer(parent, child_g, info, np.random.default_rng(5)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_deepen_bn_uses_calibration_statistics() -> None:
    g = STUDENTS["residual"]
    parent = _trained(g)
    op = create_operator("fp_deepen", SPACE)
    child_g, info = next((c, i) for c, i in op.edits(g, np.random.default_rng(0)) if i["stage"] == 0)
    calib = torch.randn(64, 2, 16, 16)
    child = op.transfer(parent, child_g, info, np.random.default_rng(0), calib=calib)
    bn = child.stages[0].blocks[info["position"]][1]
    assert float(bn.running_mean.abs().sum()) > 0  # statistics of the real activations, not 0/1
    torch.testing.assert_close(bn.weight, torch.sqrt(bn.running_var + bn.eps))
    # in training mode (batch statistics) the inserted block stays close to the identity as well;
    # with 0/1 statistics it would normalize its input and change the function a lot more
    plain = op.transfer(parent, child_g, info, np.random.default_rng(0), calib=None)
    child.train(), parent.train(), plain.train()
    with torch.no_grad():
        ref = parent(calib)
        err = float((child(calib) - ref).abs().max())
        err_plain = float((plain(calib) - ref).abs().max())
    assert err < 0.1 * float(ref.abs().max()) and err < err_plain


@pytest.mark.parametrize("name", ["shrink_width", "shrink_depth"])
def test_shrink_reports_damage_and_shrinks(name: str) -> None:
    g = STUDENTS["residual"].with_stage(2, width=12)
    parent = _trained(g)
    op = create_operator(name, SPACE)
    assert not op.preserves_function
    edits = op.edits(g, np.random.default_rng(0))
    assert edits
    calib = torch.randn(32, 2, 16, 16)
    for child_g, info in edits:
        res = morph(op, parent, child_g, info, np.random.default_rng(0), calib=calib)
        assert params_of(child_g) < params_of(g)
        assert sum(p.numel() for p in res.model.parameters()) == params_of(child_g)
        assert res.damage["max_abs_logit_change"] > 0
        assert 0 <= res.damage["top1_agreement"] <= 1
        assert res.damage == function_damage(parent, res.model, calib)


def test_shrink_depth_removes_the_least_harmful_block() -> None:
    g = StudentGenome(stages=(StageGene(4, depth=3, pool="none"),), **T)
    parent = _trained(g)
    with torch.no_grad():  # make block 1 nearly the identity of its input range: removing it costs least
        parent.stages[0].blocks[1][0].weight.zero_()
        nn.init.dirac_(parent.stages[0].blocks[1][0].weight)
        bn = parent.stages[0].blocks[1][1]
        bn.running_mean.zero_(), bn.running_var.fill_(1.0), bn.weight.fill_(1.0), bn.bias.zero_()
    op = create_operator("shrink_depth", SPACE)
    child_g, info = op.edits(g, np.random.default_rng(0))[0]
    res = morph(op, parent, child_g, info, np.random.default_rng(0), calib=torch.randn(16, 2, 16, 16))
    assert res.info["block"] == 1
    assert res.damage["max_abs_logit_change"] < 1e-3


def test_plan_maps_optimizer_state_without_scaling() -> None:
    g = STUDENTS["conv"]
    parent = _trained(g)
    op = create_operator("fp_widen", SPACE)
    child_g, info = op.edits(g, np.random.default_rng(0))[0]
    plan, _ = op.plan(parent, child_g, info, np.random.default_rng(0))
    psd = {k: torch.ones_like(v) for k, v in parent.state_dict().items() if v.is_floating_point()}
    csd = build(child_g).state_dict()
    state = apply_plan(plan, psd, csd, state=True)
    weights = apply_plan(plan, psd, csd)
    nxt = "stages.1.blocks.0.0.weight"  # its inputs were split among copies: weights scaled, state not
    assert torch.equal(state[nxt], torch.ones_like(state[nxt]))
    assert float(weights[nxt].min()) < 1.0


def test_kernel_padding_gives_the_border_a_nonzero_second_moment() -> None:
    g = STUDENTS["conv"]
    parent = _trained(g)
    op = create_operator("fp_kernel", SPACE)
    child_g, info = op.edits(g, np.random.default_rng(0))[0]
    plan, _ = op.plan(parent, child_g, info, np.random.default_rng(0))
    v = {k: torch.rand_like(t) + 0.5 for k, t in parent.state_dict().items() if t.is_floating_point()}
    state = apply_plan(plan, v, build(child_g).state_dict(), state=True)
    name = f"stages.{info['stage']}.blocks.0.0.weight"
    old, new = v[name], state[name]
    torch.testing.assert_close(new[:, :, 1:-1, 1:-1], old)  # 3x3 centre carried over
    assert float(new[:, :, 0, :].min()) == pytest.approx(float(old.mean()))  # border: the mean, not 0
    weights = apply_plan(plan, dict(parent.state_dict()), build(child_g).state_dict())
    assert float(weights[name][:, :, 0, :].abs().max()) == 0.0  # the weights' border is zero


@pytest.mark.parametrize("name", ["fp_widen", "fp_widen_head"])
@pytest.mark.parametrize("student", sorted(STUDENTS))
def test_fresh_widening_is_exact(name: str, student: str) -> None:
    g = STUDENTS[student]
    parent = _trained(g)
    op = create_operator(name, SPACE, init="fresh")
    edits = op.edits(g, np.random.default_rng(0))
    for child_g, info in edits:
        child = op.transfer(parent, child_g, info, np.random.default_rng(1)).eval()
        for b in range(3):
            x = torch.randn(8, 2, 16, 16, generator=torch.Generator().manual_seed(b)) * (1 + b)
            torch.testing.assert_close(child(x), parent(x), atol=1e-5, rtol=1e-5)
        if any(st.skip for st in g.stages):
            continue  # an identity shortcut turned projection has an eval-mode identity BatchNorm
        for m in (child, parent):  # zero fan-out: exact with batch statistics too (dropout off)
            m.train()
            for d in m.modules():
                if isinstance(d, nn.Dropout):
                    d.eval()
        x = torch.randn(16, 2, 16, 16, generator=torch.Generator().manual_seed(9))
        torch.testing.assert_close(child(x), parent(x), atol=1e-4, rtol=1e-4)
        parent.eval()


def test_fresh_widen_new_units_are_random_in_and_zero_out() -> None:
    g = StudentGenome(stages=(StageGene(4, depth=2, pool="none"),), in_channels=1, input_size=4, num_classes=2)
    parent = _trained(g)
    op = create_operator("fp_widen", SearchSpace(input_size=4, num_classes=2, widths=(4, 6), max_depth=2),
                         init="fresh")
    child = op.transfer(parent, g.with_stage(0, width=6), {"stage": 0, "old": 4, "new": 6},
                        np.random.default_rng(3))
    for k in range(2):
        w_p, w_c = parent.stages[0].blocks[k][0].weight, child.stages[0].blocks[k][0].weight
        torch.testing.assert_close(w_c[:4, :w_p.shape[1]], w_p)  # old units keep their weights
        assert float(w_c[4:].abs().sum()) > 0  # new units: random fan-in, not copies
        assert not any(torch.equal(w_c[j, :w_p.shape[1]], w_p[i]) for j in (4, 5) for i in range(4))
        bn_c = child.stages[0].blocks[k][1]
        torch.testing.assert_close(bn_c.weight[4:], torch.ones(2))  # fresh BatchNorm
    assert float(child.stages[0].blocks[1][0].weight[:4, 4:].abs().sum()) == 0  # old units ignore new ones
    torch.testing.assert_close(child.head[-1].weight[:, :4], parent.head[-1].weight)  # no split
    assert float(child.head[-1].weight[:, 4:].abs().sum()) == 0  # zero fan-out


def test_fresh_widen_new_units_start_without_velocity() -> None:
    from evofusion.distill.loop import TrainConfig, make_optimizer
    from evofusion.engine.lamarck import carry_optimizer
    from evofusion.operators.morph import morph

    g = StudentGenome(stages=(StageGene(4, pool="none"),), in_channels=1, input_size=4, num_classes=2)
    parent = _trained(g).train()
    cfg = TrainConfig(lr=1e-2)
    opt = make_optimizer(parent, cfg)
    parent(torch.randn(8, 1, 4, 4)).pow(2).mean().backward()
    opt.step()
    op = create_operator("fp_widen", SearchSpace(input_size=4, num_classes=2, widths=(4, 6)), init="fresh")
    res = morph(op, parent, g.with_stage(0, width=6), {"stage": 0, "old": 4, "new": 6}, np.random.default_rng(0))
    new_opt = carry_optimizer(res.plan, parent, opt, res.model, cfg)
    w = res.model.stages[0].blocks[0][0].weight
    st, st_p = new_opt.state[w], opt.state[parent.stages[0].blocks[0][0].weight]
    torch.testing.assert_close(st["exp_avg"][:4], st_p["exp_avg"])
    assert float(st["exp_avg"][4:].abs().sum()) == 0
    head = new_opt.state[res.model.head[-1].weight]
    assert float(head["exp_avg"][:, 4:].abs().sum()) == 0


def test_widening_init_is_validated() -> None:
    from evofusion.errors import ConfigError

    with pytest.raises(ConfigError, match="split, fresh"):
        create_operator("fp_widen", SPACE, init="copy")
