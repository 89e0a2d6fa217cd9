"""Benchmark 3 (deployment): the best Fashion-MNIST student of a search run, exported to ONNX
(parity-checked against PyTorch) and int8 (static QDQ, calibrated on 512 training images), against
the teacher exported the same way: parity error, accuracy fp32 vs int8 (ONNX Runtime, test split),
size in KB, ONNX Runtime CPU latency at batch 1 with fixed threads, and the teacher/student ratio.

Run after ``benchmarks/search_fashion_mnist.py``:
``.venv/bin/python benchmarks/deploy.py bench_runs/search/nsga2-0 [--threads 1]``; about 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from evofusion.data import load_dataset
from evofusion.export import export_student, load_student
from evofusion.export.quantize import onnx_deployment
from evofusion.store import RunStore
from evofusion.teachers import Teacher


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    with RunStore(args.run_dir, lock=False, readonly=True) as store:
        finals = store.finals()
        best = max(finals, key=lambda f: f["val_accuracy"])
        row = store.candidate(best["candidate_id"])
        teacher_meta = store.get_meta("teacher")
        cfg = store.get_meta("config")["data"]
    splits = load_dataset(cfg["name"], data_dir=cfg["data_dir"], val_fraction=cfg["val_fraction"], seed=cfg["seed"],
                          limit=cfg["limit"])
    out = Path(tempfile.mkdtemp(prefix="evofusion-deploy-"))
    export_student(row["genome"], store.resolve(best["weights_file"]), out / "student")
    student = load_student(out / "student")
    if teacher_meta.get("dir"):
        teacher = Teacher.from_dir(teacher_meta["dir"])
    else:  # runs made before the teacher's folder was recorded: the zoo cache beside the output cache
        zoo = sorted((Path(teacher_meta["cache"]).parents[1] / "zoo").glob(f"{cfg['name']}-*{teacher_meta['arch']}*"))
        teacher = Teacher.from_dir(zoo[0])
    s = onnx_deployment(student, splits, out / "student", int8=True, threads=args.threads)
    t = onnx_deployment(teacher.module, splits, out / "teacher", int8=True, threads=args.threads)
    rows = []
    for name, card, params in (("student", s, row["objective_values"]["params"]),
                               ("teacher", t, teacher_meta.get("params"))):
        rows.append({"model": name, "params": int(params), "parity": card["onnx"]["max_abs_error"],
                     "fp32_kb": card["int8"]["fp32_size_kb"], "int8_kb": card["int8"]["int8_size_kb"],
                     "acc_fp32": card["accuracy"]["test"]["onnx_fp32"], "acc_int8": card["accuracy"]["test"]["onnx_int8"],
                     "lat_fp32": card["latency_ort"]["fp32"]["latency_ms"],
                     "lat_int8": card["latency_ort"]["int8"]["latency_ms"]})
    print(json.dumps(rows, indent=1))
    print(f"\nrun {args.run_dir}, candidate {best['candidate_id']}; onnxruntime CPU, {args.threads} thread(s), batch 1\n")
    print("| model | params | ONNX parity (max abs err) | fp32 KB | int8 KB | test acc fp32 (%) | test acc int8 (%) "
          "| ORT latency fp32 (ms) | ORT latency int8 (ms) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params']} | {r['parity']:.1e} | {r['fp32_kb']:.1f} | {r['int8_kb']:.1f} | "
              f"{100 * r['acc_fp32']:.2f} | {100 * r['acc_int8']:.2f} | {r['lat_fp32']:.4f} | {r['lat_int8']:.4f} |")
    st, te = rows
    print(f"\nteacher / student ORT latency (fp32): {te['lat_fp32'] / st['lat_fp32']:.1f}x; "
          f"size: {te['fp32_kb'] / st['fp32_kb']:.1f}x")


if __name__ == "__main__":
    main()
