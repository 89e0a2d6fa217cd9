"""CDKA wiring for searches and single distillations: config -> cached teacher features -> FeatureKD.

``feature_kd_spec`` runs once before a search (or a ``evofusion distill`` run): it loads the extra
teachers, caches their logits and every configured teacher feature (one teacher pass each, reused
by every candidate and every later run) and embeds the class names with the text teacher. The
result is a small picklable dict (paths and a class table) that travels in ``EvalContext.extra``;
``feature_kd_from_spec`` turns it into a :class:`~evofusion.distill.cdka.FeatureKD` inside any worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from evofusion.config import DistillConfig, ExtraTeacherConfig, parse_yaml
from evofusion.data import DataSplits, check_teacher_outputs
from evofusion.distill.cdka import FeatureKD, FeatureTerm
from evofusion.errors import ConfigError, TeacherError
from evofusion.teachers import Teacher, TeacherCache
from evofusion.teachers.features import FeatureCache, TeacherTap, load_features
from evofusion.teachers.text import class_names_for, text_embeddings


def _load_teacher(t: ExtraTeacherConfig, i: int) -> Teacher:
    p = Path(t.path)
    try:
        return Teacher.from_dir(p) if p.is_dir() else Teacher.from_file(p, arch=t.arch)
    except TeacherError as e:
        raise ConfigError(f"distill.teachers.{i}.path", str(e)) from None


def uses_cdka(d: DistillConfig) -> bool:
    return bool(d.features or d.teachers or d.text_teacher is not None or d.teacher_weight is not None
                or d.teacher_weighting is not None)


def feature_kd_spec(d: DistillConfig, splits: DataSplits, teacher: Teacher | None, cache_dir: Path,
                    log: Any = print) -> dict[str, Any] | None:
    """The picklable CDKA spec for ``d``, or None when no CDKA key is set (plain logit KD).

    Raises:
        ConfigError / TeacherError: naming the key to fix (a missing teacher, an unknown tap, ...).
    """
    if not uses_cdka(d):
        return None
    extra = [_load_teacher(t, i) for i, t in enumerate(d.teachers or [])]
    teachers: list[Teacher | None] = [teacher, *extra]
    cache = TeacherCache(cache_dir)
    logit_dirs = []
    for t in extra:
        check_teacher_outputs(t, splits)
        logit_dirs.append(str(cache.get(t, splits).dir))
    terms: list[dict[str, Any]] = []
    fcache = FeatureCache(cache_dir)
    for i, f in enumerate(d.features or []):
        t = teachers[f.teacher]
        if t is None:
            raise ConfigError(f"distill.features.{i}.teacher", "that teacher is disabled (teacher.enabled: false)")
        if not isinstance(getattr(t, "module", None), torch.nn.Module) or isinstance(t.module, torch.jit.ScriptModule):
            kind = t.meta.get("format") or type(t.fn).__name__
            raise TeacherError(f"distill.features.{i}: feature KD needs taps inside the teacher, which this "
                               f"{kind} teacher ({t.name}) does not offer. Taps work with a teacher directory, "
                               "a zoo-arch weights file or an nn.Module given in Python; TorchScript, ONNX and "
                               "precomputed-output teachers support logit KD only")
        reduce = f.reduce or ("attention" if f.loss == "at" else "pool")
        try:
            tap = TeacherTap(f.teacher_tap, reduce, f.size)
            (fdir,) = fcache.get(t, splits, [tap])
        except TeacherError as e:
            raise ConfigError(f"distill.features.{i}.teacher_tap", str(e)) from None
        log(f"teacher features {f.teacher_tap} ({reduce}, {f.size}): {fdir}")
        terms.append({"student_tap": f.student_tap, "teacher_dir": str(fdir), "loss": f.loss, "weight": f.weight,
                      "adapter": f.adapter, "direction": f.direction})
    if d.text_teacher is not None:
        tt = d.text_teacher
        try:
            names = class_names_for(splits.name, splits.num_classes, tt.class_names)
            table = text_embeddings(tt.model, names)
        except TeacherError as e:
            raise ConfigError("distill.text_teacher", str(e)) from None
        log(f"text teacher {tt.model}: {len(names)} class names -> {table.shape[1]}-d embeddings")
        terms.append({"student_tap": tt.student_tap, "table": table.tolist(), "loss": tt.loss, "weight": tt.weight,
                      "adapter": "linear" if tt.adapter == "auto" else tt.adapter, "direction": "student",
                      "temperature": tt.temperature, "name": f"text:{tt.model}"})
    weights = [d.teacher_weight or 1.0] + [t.weight for t in d.teachers or []]
    return {"terms": terms, "logit_dirs": logit_dirs, "teacher_weights": weights,
            "weighting": d.teacher_weighting or "fixed"}


def feature_kd_from_spec(spec: dict[str, Any] | None, spatial: bool = True) -> FeatureKD | None:
    """A fresh FeatureKD (new adapters) for one training run; teacher arrays are memory-mapped.

    ``spatial=False`` drops the terms on teacher feature maps (kept: vectors and class tables): the
    cached maps belong to un-augmented inputs, so they do not fit flipped or shifted ones.
    """
    if not spec:
        return None
    terms = []
    for i, t in enumerate(spec["terms"]):
        if not spatial and "table" not in t and _is_map(load_features(t["teacher_dir"])):
            continue
        kw = {k: t[k] for k in ("student_tap", "loss", "weight", "adapter", "direction", "temperature", "name")
              if k in t}
        try:
            if "table" in t:
                terms.append(FeatureTerm(table=torch.tensor(t["table"], dtype=torch.float32), **kw))
            else:
                terms.append(FeatureTerm(teacher=load_features(t["teacher_dir"]), **kw))
        except ConfigError as e:
            raise ConfigError(f"distill.features.{i}.{e.field}", str(e).split(": ", 1)[-1]) from None
    logits = [np.load(Path(p) / "train.npy", mmap_mode="r") for p in spec["logit_dirs"]]
    return FeatureKD(terms, logits, spec["teacher_weights"], spec["weighting"])


def _is_map(a: np.ndarray) -> bool:
    return a.ndim == 4 and a.shape[2] * a.shape[3] > 1


def parse_feature_option(text: str, option: str = "--feature-kd") -> dict[str, Any]:
    """``"teacher_tap=features.conv4,student_tap=depth0.5,loss=mse,weight=1"`` -> a feature-term mapping
    (values parsed as YAML scalars); validated later with the config."""
    
    out: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "=" not in part:
            raise ConfigError(option, f"{part!r}: expected KEY=VALUE pairs separated by commas, e.g. "
                              "teacher_tap=features.conv4,student_tap=depth0.5,loss=mse,weight=1")
        k, v = part.split("=", 1)
        out[k.strip()] = parse_yaml(v)
    if "teacher_tap" not in out:
        raise ConfigError(option, f"{text!r} lacks teacher_tap=<teacher module name>")
    return out
