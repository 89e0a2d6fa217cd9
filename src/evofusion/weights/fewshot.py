"""Few-shot fitness for weight-space evolution, and a first-order MAML baseline.

A student's weights can be scored by how well its features transfer to classes it never trained on:
``heldout_split`` removes some classes from the training data, ``sample_episode`` draws N-way K-shot
episodes from the held-out classes, and ``fewshot_fitness`` fits a quick linear probe on each
episode's support features and returns the mean query accuracy (Chen et al., "A Closer Look at
Few-shot Classification", ICLR 2019: a linear classifier on frozen features is a strong baseline).
Features of an ``evofusion.genome.build`` student are its penultimate output, everything but the
final ``Linear`` of its head.

``reconstruction_fitness`` (negative MSE) and the tiny ``ConvAutoencoder`` give an unsupervised
fitness for the same search. ``fomaml`` / ``maml_eval`` are the gradient-based baseline to compare
against: first-order MAML (Finn et al., "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks", ICML 2017, Section 5.2's first-order approximation).

All randomness comes from the ``generator`` arguments; dropout is switched off wherever a model is
trained here, so the results depend on the generator only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from evofusion.data.base import DataSplits

__all__ = [
    "ConvAutoencoder",
    "Episode",
    "MetaClassifier",
    "features_fn_of",
    "fewshot_fitness",
    "fomaml",
    "heldout_split",
    "linear_probe_accuracy",
    "maml_eval",
    "make_episodes",
    "meta_classifier",
    "reconstruction_fitness",
    "sample_episode",
]

FeaturesFn = Callable[[torch.Tensor], torch.Tensor]
XY = tuple[torch.Tensor, torch.Tensor]


class Episode(NamedTuple):
    """An N-way K-shot task; labels are remapped to ``0..n_way-1``, examples grouped by class."""

    support_x: torch.Tensor  # (n_way * k_shot, C, H, W)
    support_y: torch.Tensor  # (n_way * k_shot,)
    query_x: torch.Tensor  # (n_way * q_queries, C, H, W)
    query_y: torch.Tensor  # (n_way * q_queries,)


# --- splits and episodes -------------------------------------------------------------------------


def heldout_split(data: DataSplits | tuple[torch.Tensor, torch.Tensor], holdout_classes: Sequence[int],
                  part: str = "train") -> tuple[XY, XY]:
    """Split examples by class: ``((x, y) without holdout_classes, (x, y) of holdout_classes)``.

    Labels keep their original values. ``data`` is either ``(x, y)`` or ``DataSplits``, whose
    ``part`` split (``"train"``, ``"val"`` or ``"test"``) is used.

    Raises:
        ValueError: no held-out class given, a held-out class has no example, or nothing is left
            for training.
    """
    if isinstance(data, DataSplits):
        if part not in ("train", "val", "test"):
            raise ValueError(f"part must be train | val | test, got {part!r}")
        x, y = getattr(data, part).tensors()
    else:
        x, y = torch.as_tensor(data[0]), torch.as_tensor(data[1]).long()
    held = sorted({int(c) for c in holdout_classes})
    if not held:
        raise ValueError("holdout_classes is empty")
    missing = [c for c in held if not bool((y == c).any())]
    if missing:
        raise ValueError(f"held-out classes {missing} have no example")
    mask = torch.isin(y, torch.tensor(held, dtype=y.dtype))
    if bool(mask.all()):
        raise ValueError("every example is in a held-out class; nothing is left for training")
    return (x[~mask], y[~mask]), (x[mask], y[mask])


def sample_episode(x: torch.Tensor, y: torch.Tensor, n_way: int, k_shot: int, q_queries: int,
                   generator: torch.Generator) -> Episode:
    """Draw ``n_way`` classes with at least ``k_shot + q_queries`` examples, then disjoint support and
    query examples of each; class ``j`` of the draw gets label ``j``.

    Raises:
        ValueError: fewer than ``n_way`` classes have enough examples.
    """
    if n_way < 2 or k_shot < 1 or q_queries < 1:
        raise ValueError(f"need n_way >= 2, k_shot >= 1, q_queries >= 1; got {n_way}, {k_shot}, {q_queries}")
    classes, counts = torch.unique(y, return_counts=True)
    eligible = classes[counts >= k_shot + q_queries]
    if len(eligible) < n_way:
        raise ValueError(f"{len(eligible)} classes have >= {k_shot + q_queries} examples; "
                         f"a {n_way}-way episode needs {n_way}")
    chosen = eligible[torch.randperm(len(eligible), generator=generator)[:n_way]]
    support, query = [], []
    for c in chosen.tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        support.append(idx[:k_shot])
        query.append(idx[k_shot:k_shot + q_queries])
    s_idx, q_idx = torch.cat(support), torch.cat(query)
    labels = torch.arange(n_way)
    return Episode(x[s_idx], labels.repeat_interleave(k_shot), x[q_idx], labels.repeat_interleave(q_queries))


def make_episodes(x: torch.Tensor, y: torch.Tensor, n_episodes: int, n_way: int, k_shot: int, q_queries: int,
                  generator: torch.Generator) -> list[Episode]:
    """A fixed list of episodes (draw it once, score every candidate on the same list)."""
    return [sample_episode(x, y, n_way, k_shot, q_queries, generator) for _ in range(n_episodes)]


# --- features and probes -------------------------------------------------------------------------


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _is_student(model: object) -> bool:
    head = getattr(model, "head", None)
    return (isinstance(model, nn.Module) and isinstance(getattr(model, "stages", None), nn.Module)
            and isinstance(head, nn.Sequential) and len(head) > 0 and isinstance(head[-1], nn.Linear))


def features_fn_of(model_or_fn: nn.Module | FeaturesFn) -> FeaturesFn:
    """A ``x -> (N, F)`` features function, evaluated without gradients in eval mode.

    * a built student (``stages`` + ``head`` ending in ``Linear``): ``head[:-1](stages(x))``;
    * a ``MetaClassifier``: its ``features``; a module with ``encode`` (``ConvAutoencoder``): the code;
    * any other callable or module: its output, flattened.
    """
    if isinstance(model_or_fn, MetaClassifier):
        module: nn.Module = model_or_fn
        body: FeaturesFn = model_or_fn.features
    elif _is_student(model_or_fn):
        module = model_or_fn  # type: ignore[assignment]
        body = lambda x: module.head[:-1](module.stages(x))  # noqa: E731
    elif isinstance(model_or_fn, nn.Module) and callable(getattr(model_or_fn, "encode", None)):
        module, body = model_or_fn, model_or_fn.encode
    elif isinstance(model_or_fn, nn.Module):
        module, body = model_or_fn, model_or_fn
    else:
        return model_or_fn

    @torch.no_grad()
    def features(x: torch.Tensor) -> torch.Tensor:
        was_training = module.training
        module.eval()
        try:
            return body(x.to(_device(module))).flatten(1)
        finally:
            module.train(was_training)

    return features


def linear_probe_accuracy(features_fn: FeaturesFn, episode: Episode, steps: int = 100, lr: float = 0.1,
                          method: str = "ridge", ridge: float = 1.0) -> float:
    """Fit a linear classifier on the support features, return its query accuracy in [0, 1].

    Features are standardized with the support set's statistics and get a bias column.
    ``method="ridge"`` (default, the faster one, deterministic): closed-form ridge regression on
    one-hot targets (penalty ``ridge``), solved in whichever of the primal or dual form is smaller.
    ``method="logistic"``: ``steps`` full-batch gradient-descent steps of multinomial logistic
    regression from zero weights, learning rate ``lr``.
    """
    n_way = int(episode.support_y.max()) + 1
    fs = features_fn(episode.support_x).detach().flatten(1).double().cpu()
    fq = features_fn(episode.query_x).detach().flatten(1).double().cpu()
    mean, std = fs.mean(0), fs.std(0, unbiased=False).clamp(min=1e-6)
    xs = torch.cat([(fs - mean) / std, torch.ones(len(fs), 1, dtype=fs.dtype)], 1)
    xq = torch.cat([(fq - mean) / std, torch.ones(len(fq), 1, dtype=fq.dtype)], 1)
    target = F.one_hot(episode.support_y.cpu(), n_way).double()
    if method == "ridge":
        n, d = xs.shape
        if n <= d:  # dual: W = X^T (X X^T + lambda I)^-1 Y
            w = xs.T @ torch.linalg.solve(xs @ xs.T + ridge * torch.eye(n, dtype=xs.dtype), target)
        else:
            w = torch.linalg.solve(xs.T @ xs + ridge * torch.eye(d, dtype=xs.dtype), xs.T @ target)
    elif method == "logistic":
        w = torch.zeros(xs.shape[1], n_way, dtype=xs.dtype)
        for _ in range(steps):
            grad = xs.T @ (torch.softmax(xs @ w, 1) - target) / len(xs)
            w = w - lr * grad
    else:
        raise ValueError(f"method must be ridge | logistic, got {method!r}")
    pred = (xq @ w).argmax(1)
    return float((pred == episode.query_y.cpu()).double().mean())


def fewshot_fitness(model_or_features_fn: nn.Module | FeaturesFn, episodes: Sequence[Episode],
                    **probe_kwargs: float | int | str) -> float:
    """Mean linear-probe query accuracy over a fixed list of episodes (higher is better)."""
    if not episodes:
        raise ValueError("episodes is empty")
    fn = features_fn_of(model_or_features_fn)
    return sum(linear_probe_accuracy(fn, ep, **probe_kwargs) for ep in episodes) / len(episodes)  # type: ignore[arg-type]


@torch.no_grad()
def reconstruction_fitness(autoencoder: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> float:
    """Negative mean squared reconstruction error in eval mode (higher is better)."""
    if len(x) == 0:
        raise ValueError("cannot measure reconstruction on an empty split")
    was_training = autoencoder.training
    autoencoder.eval()
    dev = _device(autoencoder)
    total = 0.0
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        total += float(F.mse_loss(autoencoder(xb), xb, reduction="sum"))
    autoencoder.train(was_training)
    return -total / x.numel()


class ConvAutoencoder(nn.Module):
    """Two stride-2 convs down to a ``latent`` code, two transposed convs back (e.g. 1x8x8, 1x28x28).

    About 5.5k parameters for 1x8x8 with the defaults. ``input_size`` must be divisible by 4. The
    output is linear (inputs are normalized, so they can be negative).
    """

    def __init__(self, in_channels: int = 1, input_size: int = 8, width: int = 8, latent: int = 16):
        super().__init__()
        if input_size % 4:
            raise ValueError(f"input_size must be divisible by 4, got {input_size}")
        side = input_size // 4
        flat = 2 * width * side * side
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(flat, latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, flat), nn.ReLU(), nn.Unflatten(1, (2 * width, side, side)),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(width, in_channels, 4, stride=2, padding=1),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


# --- first-order MAML ----------------------------------------------------------------------------


class MetaClassifier(nn.Module):
    """A feature extractor and an ``n_way`` linear head: ``head(features(x))``."""

    def __init__(self, features: nn.Module, head: nn.Linear):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def meta_classifier(model: nn.Module, n_way: int) -> MetaClassifier:
    """Wrap a built student for N-way episodes, sharing its modules.

    The features are ``stages`` then ``head[:-1]`` (the same module objects, so training the
    result trains the student); the new ``n_way`` head starts at zero (weights and bias), which
    needs no random numbers and gives uniform predictions before adaptation.
    """
    if isinstance(model, MetaClassifier):
        if model.head.out_features != n_way:
            raise ValueError(f"the model has a {model.head.out_features}-way head, the episodes are {n_way}-way")
        return model
    if not _is_student(model):
        raise TypeError("expected a student built by evofusion.genome.build (stages + head ending in Linear) "
                        f"or a MetaClassifier, got {type(model).__name__}")
    last = model.head[-1]
    head = nn.Linear(last.in_features, n_way).to(device=last.weight.device, dtype=last.weight.dtype)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return MetaClassifier(nn.Sequential(model.stages, *list(model.head)[:-1]), head)


def _train_mode(model: nn.Module) -> None:
    """Train mode (batch-norm batch statistics) with dropout off, so adaptation draws no random numbers."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()


def _adapt(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> None:
    """``steps`` plain SGD steps on (x, y), in place, every parameter."""
    _train_mode(model)
    params = [p for p in model.parameters() if p.requires_grad]
    for _ in range(steps):
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.sub_(lr * g)


def fomaml(model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, n_way: int, k_shot: int, q: int,
           meta_steps: int, inner_steps: int, inner_lr: float, outer_lr: float, generator: torch.Generator,
           meta_batch: int = 1) -> tuple[MetaClassifier, list[float]]:
    """First-order MAML (Finn et al., ICML 2017) on episodes drawn from ``(train_x, train_y)``.

    Each meta step draws ``meta_batch`` episodes; a copy of the model takes ``inner_steps`` SGD steps
    (``inner_lr``) on the support set; the gradient of the query loss at the adapted weights (the
    first-order approximation) is averaged over the episodes and applied to the meta weights by Adam
    (``outer_lr``). Batch norm uses batch statistics; after each episode the adapted copy's running
    statistics are copied back, so the meta model also works in eval mode.

    Args:
        model: a built student (wrapped by :func:`meta_classifier`, its modules trained in place) or a
            ``MetaClassifier``.

    Returns:
        The meta-trained ``MetaClassifier`` (in eval mode) and, per meta step, the mean query
        accuracy of the adapted copies (before the outer update).
    """
    if meta_steps < 1 or inner_steps < 0 or meta_batch < 1:
        raise ValueError("need meta_steps >= 1, inner_steps >= 0, meta_batch >= 1")
    meta = meta_classifier(model, n_way)
    dev = _device(meta)
    params = list(meta.parameters())
    opt = torch.optim.Adam(params, lr=outer_lr)
    history: list[float] = []
    for _ in range(meta_steps):
        grads = [torch.zeros_like(p) for p in params]
        accs = []
        for _ in range(meta_batch):
            ep = sample_episode(train_x, train_y, n_way, k_shot, q, generator)
            sx, sy, qx, qy = (t.to(dev) for t in ep)
            fast = copy.deepcopy(meta)
            _adapt(fast, sx, sy, inner_steps, inner_lr)
            logits = fast(qx)
            qgrads = torch.autograd.grad(F.cross_entropy(logits, qy), list(fast.parameters()))
            for acc_g, g in zip(grads, qgrads, strict=True):
                acc_g.add_(g, alpha=1.0 / meta_batch)
            accs.append(float((logits.argmax(1) == qy).float().mean()))
            with torch.no_grad():
                for mb, fb in zip(meta.buffers(), fast.buffers(), strict=True):
                    mb.copy_(fb)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
        opt.zero_grad(set_to_none=True)
        history.append(sum(accs) / len(accs))
    meta.eval()
    return meta, history


def maml_eval(model: nn.Module, episodes: Sequence[Episode], inner_steps: int, inner_lr: float) -> float:
    """Mean query accuracy after adapting a copy of ``model`` on each episode's support set.

    Every parameter takes ``inner_steps`` SGD steps (``inner_lr``); the query set is then scored
    with batch-norm batch statistics (transductive, as in Finn et al.'s reference code). A built
    student is first wrapped by :func:`meta_classifier` (on a copy; the student is left unchanged).
    The model itself is never modified.
    """
    if not episodes:
        raise ValueError("episodes is empty")
    total = 0.0
    for ep in episodes:
        n_way = int(ep.support_y.max()) + 1
        fast = copy.deepcopy(model)
        fast = meta_classifier(fast, n_way)
        dev = _device(fast)
        _adapt(fast, ep.support_x.to(dev), ep.support_y.to(dev), inner_steps, inner_lr)
        with torch.no_grad():
            pred = fast(ep.query_x.to(dev)).argmax(1)
        total += float((pred == ep.query_y.to(dev)).float().mean())
    return total / len(episodes)
