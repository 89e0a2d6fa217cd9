"""The language teacher loads offline from the files its wheel ships; nothing may be downloaded."""

from __future__ import annotations

import numpy as np
import pytest
import requests
import tokenizers

from evofusion.errors import TeacherError
from evofusion.teachers.text import (
    CLASS_NAMES,
    TEXT_TEACHERS,
    class_names_for,
    text_embeddings,
    wordllama_files,
)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: object, **k: object) -> None:
        raise AssertionError(f"a download was attempted: {a}")

    for name in ("get", "post", "head", "request"):
        monkeypatch.setattr(requests, name, refuse)
    monkeypatch.setattr(requests.Session, "request", refuse)
    monkeypatch.setattr(tokenizers.Tokenizer, "from_pretrained", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_wordllama_files_are_in_the_package() -> None:
    weights, tok = wordllama_files()
    assert weights.stat().st_size > 1_000_000 and tok.is_file()


def test_wordllama_embeds_class_names_without_network(no_network: None) -> None:
    names = class_names_for("fashion-mnist", 10)
    e = text_embeddings("wordllama", names).numpy()
    assert e.shape == (10, 256) and np.isfinite(e).all()
    again = text_embeddings("wordllama", names).numpy()
    np.testing.assert_array_equal(e, again)
    n = e / np.linalg.norm(e, axis=1, keepdims=True)
    sims = n @ n.T
    assert np.all(np.abs(sims[~np.eye(10, dtype=bool)]) < 0.99)  # ten different vectors
    # meaning, not noise: "Shirt" is nearer to "T-shirt/top" than to "Ankle boot"
    assert sims[6, 0] > sims[6, 9]


def test_text_teacher_registry_and_errors() -> None:
    assert "wordllama" in TEXT_TEACHERS.names()
    with pytest.raises(TeacherError, match="valid: wordllama"):
        text_embeddings("bert-from-the-hub", ["a"])


def test_class_names() -> None:
    assert class_names_for("fashion-mnist", 10)[9] == "Ankle boot"
    assert len(CLASS_NAMES["cifar10"]) == 10
    assert class_names_for("mine", 2, ["cat", "dog"]) == ["cat", "dog"]
    with pytest.raises(TeacherError, match="class_names"):
        class_names_for("mine", 3)
    with pytest.raises(TeacherError, match="3 names for 2 classes"):
        class_names_for("mine", 2, ["a", "b", "c"])
    with pytest.raises(TeacherError, match="9 names for 10 classes|10 names for 9 classes"):
        class_names_for("fashion-mnist", 9)
