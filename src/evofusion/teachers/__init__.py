"""Teachers: the ``Teacher`` wrapper, the teacher zoo, teacher training and the output cache."""

from __future__ import annotations

from evofusion.teachers.cache import CachedOutputs, TeacherCache, cache_key, default_cache_root
from evofusion.teachers.teacher import (
    OnnxTeacher,
    PrecomputedTeacher,
    Teacher,
    file_hash,
    save_teacher,
    save_teacher_outputs,
    state_dict_hash,
)
from evofusion.teachers.train import default_teacher_for, train_teacher
from evofusion.teachers.zoo import TEACHERS, build_teacher, list_teachers

__all__ = [
    "TEACHERS",
    "CachedOutputs",
    "OnnxTeacher",
    "PrecomputedTeacher",
    "Teacher",
    "TeacherCache",
    "build_teacher",
    "cache_key",
    "default_cache_root",
    "default_teacher_for",
    "file_hash",
    "list_teachers",
    "save_teacher",
    "save_teacher_outputs",
    "state_dict_hash",
    "train_teacher",
]
