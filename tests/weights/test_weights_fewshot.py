"""Few-shot episodes, linear-probe fitness, reconstruction fitness and the FOMAML baseline."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from evofusion.data import load_dataset
from evofusion.genome import HeadGene, StageGene, StudentGenome, build
from evofusion.weights.fewshot import (
    ConvAutoencoder,
    MetaClassifier,
    features_fn_of,
    fewshot_fitness,
    fomaml,
    heldout_split,
    linear_probe_accuracy,
    make_episodes,
    maml_eval,
    reconstruction_fitness,
    sample_episode,
)


@pytest.fixture(scope="module")
def digits():  # noqa: ANN201
    return load_dataset("digits")


def tiny_student() -> nn.Module:
    genome = StudentGenome(stages=(StageGene(width=4), StageGene(width=8)), head=HeadGene(hidden=16),
                           input_size=8, num_classes=10)
    return build(genome)


def test_episode_shapes_and_label_remap() -> None:
    y = torch.arange(6).repeat_interleave(10)  # 6 classes, 10 examples each
    x = y.float()[:, None, None, None].expand(-1, 1, 8, 8) + torch.arange(60.0)[:, None, None, None] / 100
    ep = sample_episode(x, y, n_way=3, k_shot=2, q_queries=4, generator=torch.Generator().manual_seed(0))
    assert ep.support_x.shape == (6, 1, 8, 8) and ep.query_x.shape == (12, 1, 8, 8)
    assert ep.support_y.tolist() == [0, 0, 1, 1, 2, 2]
    assert ep.query_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    orig_s, orig_q = ep.support_x[:, 0, 0, 0].floor(), ep.query_x[:, 0, 0, 0].floor()
    for j in range(3):  # one original class per new label, the same in support and query
        assert len(set(orig_s[ep.support_y == j].tolist()) | set(orig_q[ep.query_y == j].tolist())) == 1
    assert len(set(orig_s.tolist())) == 3
    ids_s, ids_q = set(ep.support_x[:, 0, 0, 0].tolist()), set(ep.query_x[:, 0, 0, 0].tolist())
    assert not ids_s & ids_q  # support and query never share an example
    with pytest.raises(ValueError, match="classes have"):
        sample_episode(x, y, n_way=7, k_shot=2, q_queries=4, generator=torch.Generator())


def test_heldout_classes_never_in_train_part(digits) -> None:  # noqa: ANN001
    (xt, yt), (xh, yh) = heldout_split(digits, [7, 8, 9])
    assert set(yt.tolist()) == set(range(7)) and set(yh.tolist()) == {7, 8, 9}
    assert len(yt) + len(yh) == len(digits.train) and xt.shape[1:] == (1, 8, 8)
    (xt2, yt2), (_, yh2) = heldout_split((xt, yt), [0])
    assert 0 not in yt2.tolist() and set(yh2.tolist()) == {0}
    with pytest.raises(ValueError, match="no example"):
        heldout_split((xt, yt), [9])


def test_linear_probe_on_separated_gaussians() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(5).repeat_interleave(30)
    feats = torch.randn(150, 16, generator=g) + 6.0 * torch.eye(16)[y]
    episodes = make_episodes(feats, y, 4, n_way=5, k_shot=5, q_queries=10, generator=g)
    for method in ("ridge", "logistic"):
        accs = [linear_probe_accuracy(lambda f: f, ep, method=method) for ep in episodes]
        assert min(accs) >= 0.8, (method, accs)
    assert fewshot_fitness(lambda f: f, episodes) >= 0.8


def test_fewshot_fitness_of_a_student(digits) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = tiny_student()
    _, (xh, yh) = heldout_split(digits, [7, 8, 9])
    episodes = make_episodes(xh, yh, 3, n_way=3, k_shot=5, q_queries=5, generator=torch.Generator().manual_seed(1))
    assert features_fn_of(model)(xh[:4]).shape == (4, 16)  # penultimate output: the hidden layer
    model.train()
    a, b = fewshot_fitness(model, episodes), fewshot_fitness(model, episodes)
    assert 0.0 <= a <= 1.0 and a == b and model.training  # deterministic, mode restored


def test_reconstruction_fitness_and_autoencoder() -> None:
    for size in (8, 28):
        ae = ConvAutoencoder(input_size=size)
        x = torch.randn(5, 1, size, size, generator=torch.Generator().manual_seed(0))
        assert ae(x).shape == x.shape and ae.encode(x).shape == (5, 16)
        f = reconstruction_fitness(ae, x)
        with torch.no_grad():
            mse = float(((ae(x) - x) ** 2).mean())
        assert f < 0 and f == pytest.approx(-mse, rel=1e-5)
    assert sum(p.numel() for p in ConvAutoencoder(input_size=8).parameters()) < 6000
    assert reconstruction_fitness(nn.Identity(), torch.ones(3, 1, 8, 8)) == 0.0
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvAutoencoder(input_size=10)


def test_fomaml_digits_heldout_3way_5shot(digits) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = tiny_student()
    twin = copy.deepcopy(model)
    (xt, yt), (xh, yh) = heldout_split(digits, [7, 8, 9])
    episodes = make_episodes(xh, yh, 4, n_way=3, k_shot=5, q_queries=5, generator=torch.Generator().manual_seed(1))
    before = maml_eval(model, episodes, inner_steps=3, inner_lr=0.1)
    stage0 = model.stages[0].blocks[0][0].weight.clone()
    kwargs = dict(n_way=3, k_shot=5, q=5, meta_steps=6, inner_steps=3, inner_lr=0.1, outer_lr=3e-3)
    meta, history = fomaml(model, xt, yt, generator=torch.Generator().manual_seed(2), meta_batch=2, **kwargs)
    meta2, history2 = fomaml(twin, xt, yt, generator=torch.Generator().manual_seed(2), meta_batch=2, **kwargs)
    assert isinstance(meta, MetaClassifier) and len(history) == 6 and history == history2
    assert all(0.0 <= a <= 1.0 for a in history)
    assert not torch.equal(model.stages[0].blocks[0][0].weight, stage0)  # the student is trained in place
    after = maml_eval(meta, episodes, inner_steps=3, inner_lr=0.1)
    assert 0.0 <= before <= 1.0 and 0.0 <= after <= 1.0
    assert after == maml_eval(meta2, episodes, inner_steps=3, inner_lr=0.1)
    assert 0.0 <= fewshot_fitness(meta, episodes) <= 1.0
