"""``Teacher``: a frozen function from inputs to logits, with an identity for caching.

A teacher wraps an ``nn.Module``, a TorchScript module or any callable returning logits. Weights are
only ever read from safetensors files, weights-only ``torch.load`` checkpoints (state dicts) or
TorchScript archives; a file that needs arbitrary Python unpickling is refused, never executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from evofusion.errors import TeacherError
from evofusion.teachers.zoo import build_teacher, list_teachers

META_FILE = "teacher.json"
WEIGHTS_FILE = "weights.safetensors"
_REQUIRED_META = ("arch", "in_channels", "num_classes", "input_size")
_ARCH_KWARGS = ("in_channels", "num_classes", "input_size", "width")


def state_dict_hash(module: nn.Module) -> str:
    """sha256 (hex) of the module's class name and its state dict: names sorted, then for every
    tensor its name, dtype, shape and raw bytes. Equal weights in equal classes give equal hashes in
    any process; any changed value changes the hash."""
    h = hashlib.sha256()
    cls = getattr(module, "original_name", None) or type(module).__qualname__
    h.update(f"class={cls}\n".encode())
    state = module.state_dict()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_hash(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Teacher:
    """A frozen teacher: ``teacher(x)`` returns logits ``(N, K)`` computed in eval mode under no_grad.

    Args:
        fn: an ``nn.Module`` (including ``torch.jit.ScriptModule``) or any callable mapping a float
            tensor ``(N, C, H, W)`` to logits. A module is switched to eval mode and never trained or
            modified here; its device is used for the inputs.
        name: a human-readable name for logs and reports.
        weights_hash: the identity the :class:`TeacherCache` keys outputs on. Optional for modules
            (then the hash of their state dict, recomputed on every access so edited weights never
            hit a stale cache); required for a bare callable, whose identity cannot be inferred.
        meta: free-form description (e.g. the ``teacher.json`` of a teacher directory).
    """

    def __init__(self, fn: nn.Module | Callable[[torch.Tensor], torch.Tensor], name: str = "teacher",
                 weights_hash: str | None = None, meta: Mapping[str, Any] | None = None):
        if not callable(fn):
            raise TeacherError(f"teacher '{name}' must be an nn.Module or a callable returning logits, got "
                               f"{type(fn).__name__}")
        self.fn = fn
        self.name = name
        self.meta: dict[str, Any] = dict(meta or {})
        self._weights_hash = weights_hash
        if isinstance(fn, nn.Module):
            fn.eval()

    @property
    def module(self) -> nn.Module | None:
        """The wrapped module, or None for a bare callable."""
        return self.fn if isinstance(self.fn, nn.Module) else None

    @property
    def weights_hash(self) -> str:
        """The teacher's identity for caching (see the class docstring).

        Raises:
            TeacherError: a bare callable was wrapped without ``weights_hash``.
        """
        if self._weights_hash is not None:
            return self._weights_hash
        if isinstance(self.fn, nn.Module):
            return state_dict_hash(self.fn)
        raise TeacherError(
            f"teacher '{self.name}' wraps a plain callable ({type(self.fn).__name__}) without weights, so it has "
            "no identity: cached outputs need one to know when they are stale. Pass "
            "Teacher(fn, weights_hash='<a string that changes whenever fn's outputs change>')."
        )

    def _device(self) -> torch.device | None:
        if isinstance(self.fn, nn.Module):
            for t in self.fn.parameters():
                return t.device
            for t in self.fn.buffers():
                return t.device
        return None

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for one batch, on the input's device. The module is put in eval mode first."""
        if isinstance(self.fn, nn.Module) and self.fn.training:
            self.fn.eval()
        device = self._device()
        out = self.fn(x if device is None else x.to(device))
        if not isinstance(out, torch.Tensor):
            raise TeacherError(f"teacher '{self.name}' returned {type(out).__name__}, expected a logits tensor")
        return out.to(x.device)

    @torch.no_grad()
    def predict(self, x: torch.Tensor | np.ndarray, batch_size: int = 1024,
                transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Logits for all of ``x`` as a float32 CPU tensor, computed ``batch_size`` rows at a time,
        with ``transform`` (if given) applied to every batch before the teacher sees it."""
        xt = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
        outs = []
        for i in range(0, len(xt), batch_size):
            xb = xt[i:i + batch_size]
            if transform is not None:
                xb = transform(xb)
            outs.append(self(xb).detach().float().cpu())
        return torch.cat(outs) if outs else torch.empty(0, 0)

    def __repr__(self) -> str:
        return f"Teacher(name={self.name!r}, fn={type(self.fn).__name__})"

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_dir(cls, path: str | Path) -> Teacher:
        """Load a teacher directory written by :func:`save_teacher` (``teacher.json`` +
        ``weights.safetensors``): rebuild the zoo architecture and load the weights by name.

        Raises:
            TeacherError: a file is missing, ``teacher.json`` lacks a field, or the weights do not fit.
        """
        d = Path(path)
        meta_path, weights_path = d / META_FILE, d / WEIGHTS_FILE
        for p in (meta_path, weights_path):
            if not p.is_file():
                raise TeacherError(f"{p}: missing; a teacher directory holds {META_FILE} and {WEIGHTS_FILE} "
                                   "(written by evofusion.teachers.save_teacher)")
        try:
            meta = json.loads(meta_path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TeacherError(f"{meta_path}: cannot be read as JSON ({e})") from None
        if not isinstance(meta, dict):
            raise TeacherError(f"{meta_path}: must hold a JSON object (arch, in_channels, num_classes, input_size)")
        missing = [k for k in _REQUIRED_META if k not in meta]
        if missing:
            raise TeacherError(f"{meta_path}: missing field(s) {missing}")
        check_arch_kwargs(meta, meta_path)
        kwargs = {k: meta[k] for k in _ARCH_KWARGS if k in meta}
        model = _build(meta["arch"], kwargs, meta_path)
        _load_into(model, _read_safetensors(weights_path), weights_path, meta["arch"], kwargs)
        return cls(model, name=str(meta.get("name", d.name)), meta=meta)

    @classmethod
    def from_file(cls, path: str | Path, arch: str | None = None, **arch_kwargs: Any) -> Teacher:
        """Load a teacher from one weights file.

        * ``.safetensors``: a state dict; needs ``arch`` and its arguments (``in_channels``,
          ``num_classes``, ``input_size``, optional ``width``).
        * a TorchScript archive (any extension): loaded with ``torch.jit.load``; it carries its own
          architecture, so ``arch`` must not be given. Its identity is the file's sha256.
        * ``.pt`` / ``.pth`` / other: ``torch.load(weights_only=True)`` only; the result must be a
          state dict (optionally under ``"state_dict"`` / ``"model_state_dict"`` / ``"model"``, with
          a ``module.`` prefix from DataParallel stripped) and needs ``arch``.

        Raises:
            TeacherError: missing file; a pickle that needs arbitrary Python objects (refused, never
                executed: convert it to safetensors); unreadable file; missing ``arch`` or arguments;
                keys or shapes that do not fit the architecture (the message names the first ones).
        """
        p = Path(path)
        if not p.is_file():
            raise TeacherError(f"{p}: teacher weights file not found")
        if p.suffix.lower() == ".onnx":
            if arch is not None:
                raise TeacherError(f"{p}: is an ONNX graph that carries its own architecture; do not pass "
                                   f"arch='{arch}'")
            return cls(OnnxTeacher(p), name=p.stem, weights_hash=file_hash(p),
                       meta={"source": str(p), "format": "onnx"})
        if p.suffix.lower() == ".npz":
            return PrecomputedTeacher.from_file(p)
        if _is_torchscript(p):
            if arch is not None:
                raise TeacherError(f"{p}: is a TorchScript archive that carries its own architecture; "
                                   f"do not pass arch='{arch}'")
            try:
                module = torch.jit.load(str(p), map_location="cpu")
            except Exception as e:  # any load failure is reported as a TeacherError
                raise TeacherError(f"{p}: cannot load TorchScript archive ({e})") from e
            return cls(module, name=p.stem, weights_hash=file_hash(p), meta={"source": str(p), "format": "torchscript"})
        if p.suffix == ".safetensors":
            state = _read_safetensors(p)
        else:
            state = _torch_load_state_dict(p)
        if arch is None:
            raise TeacherError(f"{p}: holds only weights (a state dict); name its zoo architecture (CLI: "
                               f"--set teacher.arch=NAME, Python: arch=) from: {', '.join(list_teachers())}")
        unknown = sorted(set(arch_kwargs) - set(_ARCH_KWARGS))
        if unknown:
            raise TeacherError(f"{p}: unknown architecture argument(s) {unknown}; valid: {list(_ARCH_KWARGS)}")
        check_arch_kwargs(arch_kwargs, p)
        model = _build(arch, arch_kwargs, p)
        _load_into(model, state, p, arch, arch_kwargs)
        meta = {"source": str(p), "arch": arch, **arch_kwargs}
        return cls(model, name=p.stem, meta=meta)


class OnnxTeacher:
    """An ONNX graph run by ONNX Runtime (CUDA provider when present, else CPU) as a teacher callable:
    float32 ``(N, C, H, W)`` inputs (normalized as the run's data) to logits. Logit KD only: a graph
    has no forward hooks for feature taps."""

    def __init__(self, path: str | Path):
        try:
            import onnxruntime as ort
        except ImportError:
            raise TeacherError(f"{path}: an ONNX teacher needs onnxruntime: pip install 'evofusion[export]'") from None
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as e:  # an unreadable or invalid graph
            raise TeacherError(f"{path}: cannot load the ONNX graph ({str(e)[:300]})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise TeacherError(f"{path}: an ONNX teacher must take one input (images), it takes {len(inputs)}")
        self.input_name = inputs[0].name
        self.dtype = np.uint8 if "uint8" in inputs[0].type else np.float32
        self.path = str(path)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=self.dtype)
        out = self.session.run(None, {self.input_name: arr})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))


class PrecomputedTeacher(Teacher):
    """A teacher given as its outputs only: logits computed elsewhere (a model too big for this
    machine, an ensemble, a hosted API), aligned row by row with the run's ``train`` / ``val`` /
    ``test`` splits, in an ``.npz`` holding those three float arrays and the splits' ``fingerprint``
    (:func:`save_teacher_outputs` writes one). The cache checks the fingerprint and the row counts and
    names any mismatch. Logit KD only."""

    def __init__(self, outputs: Mapping[str, np.ndarray], fingerprint: str, name: str, weights_hash: str,
                 meta: Mapping[str, Any] | None = None):
        super().__init__(self._refuse, name=name, weights_hash=weights_hash, meta=meta)
        self.outputs = {k: np.asarray(v, dtype=np.float32) for k, v in outputs.items()}
        self.fingerprint = fingerprint

    def _refuse(self, x: torch.Tensor) -> torch.Tensor:
        raise TeacherError(f"teacher '{self.name}' is precomputed outputs only: it cannot score new inputs "
                           "(feature KD, augmentation and other data need a teacher that runs)")

    @classmethod
    def from_file(cls, path: str | Path) -> PrecomputedTeacher:
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise TeacherError(f"{p}: cannot be read as an .npz of teacher outputs ({e})") from None
        missing = [k for k in ("train", "val", "test", "fingerprint") if k not in data]
        if missing:
            raise TeacherError(f"{p}: teacher outputs need arrays train, val, test (logits) and fingerprint; "
                               f"missing {missing} (write them with evofusion.teachers.save_teacher_outputs)")
        for k in ("train", "val", "test"):
            if data[k].ndim != 2 or not np.isfinite(data[k]).all():
                raise TeacherError(f"{p}: '{k}' must be a finite (rows, classes) array, got shape {data[k].shape}")
        return cls({k: data[k] for k in ("train", "val", "test")}, str(data["fingerprint"]), p.stem, file_hash(p),
                   meta={"source": str(p), "format": "outputs",
                         **({"data": str(data["data"])} if "data" in data else {})})


def save_teacher_outputs(path: str | Path, splits: Any, logits: Mapping[str, np.ndarray]) -> Path:
    """Write teacher outputs for ``splits`` (``logits``: split name -> (rows, classes) array, aligned
    with ``splits.train`` / ``val`` / ``test``) as an ``.npz`` that ``--teacher FILE.npz`` accepts."""
    p = Path(path)
    for k in ("train", "val", "test"):
        a = np.asarray(logits[k])
        if a.shape != (len(getattr(splits, k)), splits.num_classes):
            raise TeacherError(f"outputs '{k}' have shape {a.shape}, the split needs "
                               f"({len(getattr(splits, k))}, {splits.num_classes})")
    np.savez(p, **{k: np.asarray(logits[k], dtype=np.float32) for k in ("train", "val", "test")},
             fingerprint=np.array(splits.fingerprint()), data=np.array(splits.name))
    return p


def check_arch_kwargs(meta: Mapping[str, Any], source: Path) -> None:
    """TeacherError naming ``source`` and the field unless the architecture arguments are well typed:
    ``arch`` a string, ``in_channels`` / ``num_classes`` / ``input_size`` positive integers (not
    ``"1"`` or 8.5), ``width`` a positive number."""
    if not isinstance(meta.get("arch", ""), str):
        raise TeacherError(f"{source}: arch must be a zoo name string, got {meta['arch']!r}")
    for k in ("in_channels", "num_classes", "input_size"):
        v = meta.get(k)
        if k in meta and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise TeacherError(f"{source}: {k} must be a positive integer, got {v!r}")
    w = meta.get("width", 1.0)
    if isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w <= 4:
        raise TeacherError(f"{source}: width must be a number in (0, 4], got {w!r}")


def _build(arch: str, kwargs: Mapping[str, Any], source: Path) -> nn.Module:
    missing = [k for k in ("in_channels", "num_classes", "input_size") if k not in kwargs]
    if missing:
        raise TeacherError(f"{source}: to rebuild arch '{arch}' give {missing}")
    try:
        return build_teacher(arch, **kwargs)
    except TeacherError as e:
        raise TeacherError(f"{source}: {e}") from e


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own error types
        raise TeacherError(f"{path}: cannot be read as safetensors ({e})") from e


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip holding ``<root>/constants.pkl`` and ``<root>/code/``."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _torch_load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found is None and not re.search(r"GLOBAL|allowed global|Unsupported class|REDUCE|BUILD", str(e)):
            raise TeacherError(f"{path}: is not a PyTorch checkpoint (corrupt or not a torch.save file: {e}); "
                               "give a .safetensors state dict, a weights-only .pt or a TorchScript archive") from None
        what = f" (first disallowed object: {found.group(1)})" if found else ""
        raise TeacherError(
            f"{path}: contains pickled Python objects{what} that were not loaded for safety: unpickling them "
            "could run arbitrary code. Load it only in a process you trust, save its state dict to "
            "safetensors (safetensors.torch.save_file(model.state_dict(), 'teacher.safetensors')) and load "
            "that file instead."
        ) from e
    except Exception as e:  # corrupt or foreign files raise many types
        raise TeacherError(f"{path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: {e})") from e
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise TeacherError(f"{path}: expected a state dict (names -> tensors), got {type(obj).__name__}")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _load_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: Path, arch: str,
               kwargs: Mapping[str, Any]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]} ({len(missing)} in all)")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]} ({len(unexpected)} in all)")
        if shapes:
            parts.append(f"shape mismatches {shapes[:5]} ({len(shapes)} in all)")
        raise TeacherError(f"{source}: weights do not fit arch '{arch}' {dict(kwargs)}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    model.eval()


# ---------------------------------------------------------------------- saving


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a uniquely named temporary file in the same directory and
    ``os.replace``: readers see the old file or the whole new one, never a partial one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_teacher(model: nn.Module, out_dir: str | Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Write a teacher directory loadable by :meth:`Teacher.from_dir`.

    ``meta`` must hold ``arch`` (a zoo name), ``in_channels``, ``num_classes``, ``input_size`` and may
    hold ``width`` (default 1.0) and anything JSON-serializable (data name, accuracies, ...). ``params``
    and ``weights_hash`` are filled in. ``weights.safetensors`` is written first and ``teacher.json``
    last, each atomically, so a directory with ``teacher.json`` is complete.

    Returns:
        The metadata as written to ``teacher.json``.

    Raises:
        TeacherError: ``meta`` lacks a required field.
    """
    missing = [k for k in _REQUIRED_META if k not in meta]
    if missing:
        raise TeacherError(f"save_teacher: meta lacks {missing}; from_dir needs them to rebuild the model")
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    full = {"width": 1.0, **dict(meta),
            "params": int(sum(p.numel() for p in model.parameters())),
            "weights_hash": state_dict_hash(model)}
    try:
        meta_bytes = (json.dumps(full, indent=2, sort_keys=True) + "\n").encode()
    except TypeError as e:
        raise TeacherError(f"save_teacher: meta must be JSON-serializable ({e})") from e
    atomic_write_bytes(d / WEIGHTS_FILE, safetensors_bytes(state))
    atomic_write_bytes(d / META_FILE, meta_bytes)
    return full
