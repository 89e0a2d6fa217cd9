"""Feature-KD losses, multi-teacher logit KD and adapters, against hand-computed values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evofusion.distill.adapters import Adapter, resize_map
from evofusion.distill.features import FEATURE_LOSSES, linear_cka, multi_teacher_kd
from evofusion.distill.losses import kd_loss
from evofusion.errors import ConfigError


def test_registry_lists_every_loss() -> None:
    assert {"mse", "cosine", "cka", "at", "contrastive"} <= set(FEATURE_LOSSES.names())
    with pytest.raises(KeyError, match="valid: .*cka"):
        FEATURE_LOSSES.get("l7")


@pytest.mark.parametrize("name", ["mse", "cosine", "cka", "at"])
def test_loss_is_zero_on_identical_features_and_positive_otherwise(name: str) -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(16, 4, 5, 5, generator=g), torch.randn(16, 4, 5, 5, generator=g)
    fn = FEATURE_LOSSES.get(name)
    assert float(fn(s, s)) == pytest.approx(0.0, abs=1e-5)
    assert float(fn(s, t)) > 1e-3


def test_mse_and_cosine_by_hand() -> None:
    s, t = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert float(FEATURE_LOSSES.get("mse")(s, t)) == pytest.approx((1 + 1 + 0 + 1) / 4)
    assert float(FEATURE_LOSSES.get("cosine")(s, t)) == pytest.approx((1.0 + 0.0) / 2)


def test_linear_cka_invariances() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(32, 6, generator=g)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    assert float(linear_cka(a, 3.0 * a @ q)) == pytest.approx(1.0, abs=1e-5)  # rotation + scale
    assert float(linear_cka(a, torch.cat([a, a], 1))) == pytest.approx(1.0, abs=1e-5)  # any width
    assert float(linear_cka(a, torch.randn(32, 9, generator=g))) < 0.6


def test_attention_transfer_across_widths_and_sizes() -> None:
    g = torch.Generator().manual_seed(2)
    s = torch.randn(4, 3, 8, 8, generator=g)
    same_attention = s.repeat(1, 5, 1, 1) * 2.0  # 15 channels, same spatial energy pattern
    at = FEATURE_LOSSES.get("at")
    assert float(at(s, same_attention)) == pytest.approx(0.0, abs=1e-6)
    cached = F.adaptive_avg_pool2d(s.pow(2).mean(1, keepdim=True), 4)  # a cached 4x4 attention map
    assert float(at(s, cached)) == pytest.approx(0.0, abs=1e-6)
    # by hand: normalised attention vectors, squared difference, mean
    t = torch.randn(4, 2, 8, 8, generator=g)
    qa = F.normalize(s.pow(2).mean(1).flatten(1), dim=1)
    qb = F.normalize(t.pow(2).mean(1).flatten(1), dim=1)
    assert float(at(s, t)) == pytest.approx(float((qa - qb).pow(2).mean()), rel=1e-5)


def test_contrastive_prefers_the_labels_row() -> None:
    table = torch.eye(3) * 5
    labels = torch.tensor([0, 1, 2])
    fn = FEATURE_LOSSES.get("contrastive")
    good = fn(torch.eye(3), None, labels=labels, table=table, temperature=0.1)
    bad = fn(torch.eye(3)[[1, 2, 0]], None, labels=labels, table=table, temperature=0.1)
    assert float(good) < 1e-3 < float(bad)
    with pytest.raises(ValueError, match="labels"):
        fn(torch.eye(3), None)


def test_multi_teacher_with_one_teacher_equals_kd_loss() -> None:
    g = torch.Generator().manual_seed(3)
    s, t, y = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g), torch.randint(0, 5, (8,), generator=g)
    ref = kd_loss(s, y, t, alpha=0.3, temperature=2.0)
    for weighting in ("fixed", "confidence"):
        torch.testing.assert_close(multi_teacher_kd(s, y, [t], [2.0], weighting, 0.3, 2.0), ref)


def test_teacher_weights_fixed_and_by_confidence() -> None:
    g = torch.Generator().manual_seed(4)
    s, y = torch.randn(2, 3, generator=g), torch.tensor([0, 1])
    sure = torch.tensor([[9.0, 0, 0], [0, 0, 0]])  # confident on example 0, uniform on example 1
    unsure = torch.tensor([[0.0, 0, 0], [0, 9, 0]])  # the reverse
    T = 1.0

    def kl(t: torch.Tensor) -> torch.Tensor:
        return F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t / T, 1), reduction="none", log_target=True).sum(1)

    fixed = multi_teacher_kd(s, y, [sure, unsure], [3.0, 1.0], "fixed", 0.0, T)
    torch.testing.assert_close(fixed, (0.75 * kl(sure) + 0.25 * kl(unsure)).mean())
    conf = multi_teacher_kd(s, y, [sure, unsure], [1.0, 1.0], "confidence", 0.0, T)
    c1, c2 = F.softmax(sure, 1).amax(1), F.softmax(unsure, 1).amax(1)
    w1 = c1 / (c1 + c2)
    torch.testing.assert_close(conf, (w1 * kl(sure) + (1 - w1) * kl(unsure)).mean())
    assert float(w1[0]) == pytest.approx(0.75, abs=1e-3) and float(w1[1]) == pytest.approx(0.25, abs=1e-3)


def test_adapters_map_shapes() -> None:
    x = torch.randn(2, 8, 7, 7)
    assert Adapter("conv1x1", (8, 7, 7), (16, 4, 4))(x).shape == (2, 16, 4, 4)
    assert Adapter("auto", (8, 7, 7), (16, 14, 14))(x).shape == (2, 16, 14, 14)  # grown by interpolation
    assert Adapter("auto", (8, 7, 7), (256,))(x).shape == (2, 256)  # GAP + linear
    assert Adapter("none", (8, 7, 7), (8, 1, 1))(x).shape == (2, 8, 1, 1)
    assert resize_map(x, (7, 7)) is x
    with pytest.raises(ConfigError, match="none"):
        Adapter("none", (8, 7, 7), (16, 7, 7))(x)
    with pytest.raises(ConfigError, match="conv1x1"):
        Adapter("conv1x1", (8,), (16,))
    with pytest.raises(ConfigError, match="linear"):
        Adapter("linear", (8,), (16, 2, 2))


@pytest.mark.parametrize("kind, src, dst", [("conv1x1", (4, 6, 6), (8, 3, 3)), ("linear", (4,), (8,))])
def test_widened_adapter_keeps_its_function_on_the_old_channels(kind: str, src: tuple, dst: tuple) -> None:
    torch.manual_seed(0)
    a = Adapter(kind, src, dst)
    wide = a.widened((7, *src[1:]))
    x = torch.randn(3, *src)
    x_wide = torch.cat([x, torch.randn(3, 3, *src[1:])], 1)  # new channels: anything, their weights are 0
    torch.testing.assert_close(wide(x_wide), a(x))
    loss = wide(x_wide).sum()
    loss.backward()
    assert all(p.grad is not None for p in wide.parameters())


@pytest.mark.parametrize("src, dst", [((8, 7, 7), (16, 4, 4)), ((8, 7, 7), (16, 14, 14)), ((8, 6, 6), (16, 3, 3))])
def test_conv1x1_adapter_equals_conv_then_resize(src: tuple, dst: tuple) -> None:
    torch.manual_seed(0)
    a = Adapter("conv1x1", src, dst)
    x = torch.randn(3, *src)
    assert a.proj is not None
    torch.testing.assert_close(a(x), resize_map(a.proj(x), dst[1:]), rtol=1e-5, atol=1e-5)
