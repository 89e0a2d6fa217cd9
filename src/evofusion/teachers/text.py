"""Language teachers for cross-modal distillation: sentence embeddings of the class names.

A text teacher turns each class name into a vector; a vision student then learns, through an
adapter, to place its features near the embedding of its label's name (see
``evofusion.distill.cdka``). Teachers are created by name from ``TEXT_TEACHERS`` and must load
their weights from files that an installed package ships: nothing is fetched at run time.

``wordllama`` (WordLlama ``l2_supercat``, 256-d): the wheel ships ``weights/l2_supercat_256.safetensors``
and ``tokenizers/l2_supercat_tokenizer_config.json``. ``WordLlama.load`` looks for the tokenizer in a
``tokenizer/`` folder of the package (which does not exist) and then in ``<cache_dir>/tokenizers/``,
so the package folder itself is given as ``cache_dir`` with ``disable_download=True``: both files
resolve locally and a missing file raises instead of reaching Hugging Face.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from evofusion.errors import TeacherError
from evofusion.registry import Registry

TextEncoder = Callable[[list[str]], np.ndarray]
TEXT_TEACHERS: Registry[TextEncoder] = Registry("text_teachers")

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"),
    "mnist": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "digits": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}


def class_names_for(data_name: str, num_classes: int, given: Sequence[str] | None = None) -> list[str]:
    """The class names of a data set (``given`` wins), checked against ``num_classes``.

    Raises:
        TeacherError: no names are known for ``data_name`` and none were given, or the count is wrong.
    """
    if given is not None:
        names = [str(n) for n in given]
        where = "distill.text_teacher.class_names"
    elif data_name in CLASS_NAMES:
        names, where = list(CLASS_NAMES[data_name]), f"the built-in names of {data_name}"
    else:
        raise TeacherError(f"no class names are known for data set {data_name!r}; give them in "
                           "distill.text_teacher.class_names (one per class, in label order)")
    if len(names) != num_classes:
        raise TeacherError(f"{where}: {len(names)} names for {num_classes} classes")
    if any(not n.strip() for n in names):
        raise TeacherError(f"{where}: class names must not be empty")
    return names


def wordllama_files() -> tuple[Path, Path]:
    """(weights, tokenizer) files inside the installed ``wordllama`` package."""
    spec = importlib.util.find_spec("wordllama")
    if spec is None or spec.origin is None:
        raise TeacherError("text teacher 'wordllama' needs the wordllama package: pip install wordllama")
    root = Path(spec.origin).parent
    weights = root / "weights" / "l2_supercat_256.safetensors"
    tokenizer = root / "tokenizers" / "l2_supercat_tokenizer_config.json"
    for p in (weights, tokenizer):
        if not p.is_file():
            raise TeacherError(f"{p}: missing from the wordllama package; reinstall it (the wheel ships its "
                               "weights; nothing is downloaded at run time)")
    return weights, tokenizer


@TEXT_TEACHERS.register("wordllama")
def wordllama() -> TextEncoder:
    """WordLlama l2_supercat, 256-d embeddings, loaded offline from the package's own files."""
    weights, _ = wordllama_files()
    root_logger = logging.getLogger()
    level, handlers = root_logger.level, list(root_logger.handlers)
    try:
        from wordllama import WordLlama  # its inference module calls logging.basicConfig at import

        model = WordLlama.load(config="l2_supercat", dim=256, cache_dir=weights.parent.parent,
                               disable_download=True)
    except FileNotFoundError as e:
        raise TeacherError(f"wordllama: {e}") from e
    finally:
        root_logger.setLevel(level)
        for h in list(root_logger.handlers):
            if h not in handlers:
                root_logger.removeHandler(h)

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(model.embed(list(texts), norm=False), dtype=np.float32)

    return encode


def text_embeddings(model: str, texts: Sequence[str]) -> torch.Tensor:
    """``(len(texts), D)`` float32 embeddings from the text teacher ``model``.

    Raises:
        TeacherError: unknown model (lists the valid ones), or non-finite embeddings.
    """
    if model not in TEXT_TEACHERS:
        raise TeacherError(f"unknown text teacher {model!r}; valid: {', '.join(TEXT_TEACHERS.names())}")
    emb = TEXT_TEACHERS.get(model)()(list(texts))
    if emb.ndim != 2 or emb.shape[0] != len(texts) or not np.isfinite(emb).all():
        raise TeacherError(f"text teacher {model!r} returned unusable embeddings of shape {emb.shape}")
    return torch.from_numpy(np.ascontiguousarray(emb))
