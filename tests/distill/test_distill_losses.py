"""kd_loss against a hand computation of alpha * CE + (1 - alpha) * T^2 * KL(p_t || p_s)."""

from __future__ import annotations

import pytest
import torch

from evofusion.distill.losses import KD_LOSSES, kd_loss


def _batch(seed: int = 0, n: int = 6, c: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * 3, torch.randint(0, c, (n,), generator=g), \
        torch.randn(n, c, generator=g) * 3


def _hand(s: torch.Tensor, y: torch.Tensor, t: torch.Tensor, alpha: float, temp: float) -> torch.Tensor:
    n = len(y)
    log_ps = s - s.exp().sum(1, keepdim=True).log()
    ce = -sum(log_ps[i, y[i]] for i in range(n)) / n
    log_ps_t = s / temp - (s / temp).exp().sum(1, keepdim=True).log()
    pt = (t / temp).exp() / (t / temp).exp().sum(1, keepdim=True)
    kl = (pt * (pt.log() - log_ps_t)).sum() / n  # batchmean: summed over classes and batch, / batch
    return alpha * ce + (1 - alpha) * temp * temp * kl


def test_registered() -> None:
    assert KD_LOSSES.get("kd") is kd_loss
    assert "kd" in KD_LOSSES


@pytest.mark.parametrize(("alpha", "temp"), [(0.5, 4.0), (0.0, 1.0), (0.3, 2.5), (0.9, 10.0), (0.0, 0.5)])
def test_matches_hand_computation(alpha: float, temp: float) -> None:
    s, y, t = _batch(seed=int(alpha * 10 + temp))
    got = kd_loss(s, y, t, alpha=alpha, temperature=temp)
    assert got.shape == ()
    torch.testing.assert_close(got, _hand(s.double(), y, t.double(), alpha, temp).float())


def test_defaults_are_half_and_four() -> None:
    s, y, t = _batch(1)
    torch.testing.assert_close(kd_loss(s, y, t), _hand(s.double(), y, t.double(), 0.5, 4.0).float())


def test_kl_is_zero_when_student_equals_teacher() -> None:
    s, y, _ = _batch(2)
    torch.testing.assert_close(kd_loss(s, y, s.clone(), alpha=0.0), torch.tensor(0.0), atol=1e-6, rtol=0)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_plain_cross_entropy_without_teacher_or_alpha_one(alpha: float) -> None:
    s, y, t = _batch(3)
    ce = torch.nn.functional.cross_entropy(s, y)
    torch.testing.assert_close(kd_loss(s, y, None, alpha=alpha), ce)
    torch.testing.assert_close(kd_loss(s, y, t, alpha=1.0, temperature=7.0), ce)
    torch.testing.assert_close(_hand(s.double(), y, t.double(), 1.0, 7.0).float(), ce)


def test_teacher_in_half_precision_is_upcast() -> None:
    s, y, t = _batch(4)
    torch.testing.assert_close(kd_loss(s, y, t.half()), kd_loss(s, y, t.half().float()))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_gradient_flows_to_the_student_only(alpha: float) -> None:
    s, y, t = _batch(5)
    s1 = s.clone().requires_grad_(True)
    t1 = t.clone().requires_grad_(True)
    kd_loss(s1, y, t1.detach(), alpha=alpha, temperature=3.0).backward()
    s2 = s.double().requires_grad_(True)
    _hand(s2, y, t.double(), alpha, 3.0).backward()
    assert s1.grad is not None and torch.isfinite(s1.grad).all() and s1.grad.abs().sum() > 0
    torch.testing.assert_close(s1.grad, s2.grad.float())
    assert t1.grad is None
