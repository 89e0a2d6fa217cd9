"""Fault soak: real SIGKILLs of a search driver and of checkpoint writes, then resume.

Part A (driver kills): for each seed, an uninterrupted reference run; then the same run in a
subprocess SIGKILLed at a random moment, resumed in a subprocess SIGKILLed again at a random moment
(``--kills-per-seed``), and finally resumed to the end. Figures: kills survived, finished candidates
lost (a row finished before a kill that is missing or different at the end: must be 0), runs whose
final candidates (genomes, statuses, objective values) equal the reference (must be all).

Part B (checkpoint-write kills): a forked child writes ~16 MB checkpoints back to back; the parent
SIGKILLs it (every other kill aimed: as soon as a temp file shows a write is under way, plus a random
part of a write's duration; the others at a uniform random moment), then the newest checkpoint must load (checksum verified) and be no
older than the last one known complete. Figures: kills, kills that landed mid-write (a temp file was
left), checkpoints that failed to load (must be 0).

Budget: about 10-15 min on a busy 2-core machine with the defaults (20 seeds x 2 kills, 200 write
kills). ``python benchmarks/fault_soak.py --seeds 3 --ckpt-kills 20`` is a 2-minute smoke run.
Run outputs go under bench_runs/fault_soak/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from evofusion import Study  # noqa: E402
from evofusion.store import RunStore  # noqa: E402


def config(seed: int) -> dict[str, Any]:
    return {"seed": seed, "generations": 4, "threads": 1, "data": {"name": "digits", "limit": 300},
            "teacher": {"epochs": 20}, "distill": {"steps": 12, "batch_size": 64}, "final": {"top_k": 0},
            "space": {"max_stages": 2, "widths": [4, 8], "max_depth": 1, "head_hidden": [0]},
            "strategy": {"name": "nsga2", "population": 4}}


CHILD = textwrap.dedent("""
    import json, sys, time, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {src!r})
    from evofusion import Study
    cfg = json.loads({cfg!r})
    study = (Study.create(cfg, {run!r}, log=lambda *_: None) if {create}
             else Study.resume({run!r}, log=lambda *_: None))
    print("STARTED", flush=True)
    t0 = time.perf_counter()
    study.optimize()
    print("DONE", time.perf_counter() - t0, flush=True)
    study.close()
""")


def rows(run: Path, finished_only: bool = False) -> dict[int, tuple]:
    if not (run / "run.db").exists():
        return {}
    try:
        with RunStore(run, lock=False, readonly=True) as s:
            return {r["id"]: (r["genome_hash"], r["status"], json.dumps(r["objective_values"], sort_keys=True))
                    for r in s.candidates() if not finished_only or r["status"] != "PENDING"}
    except Exception:  # a kill before the schema was written
        return {}


def killed_run(run: Path, seed: int, create: bool, window: float, rng: np.random.Generator) -> str:
    """Start the driver in a subprocess; SIGKILL it at a uniform random time within ``window`` s of
    its optimize() starting. Returns 'killed' or 'finished' (it ended before the kill)."""
    code = CHILD.format(src=str(ROOT / "src"), cfg=json.dumps(config(seed)), run=str(run), create=create)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "STARTED" not in line:
        proc.wait()
        raise RuntimeError(f"driver did not start: {line} {proc.stderr.read()[-2000:] if proc.stderr else ''}")
    time.sleep(float(rng.uniform(0, window)))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return "killed"
    proc.wait()
    return "finished"


def calibrate(out: Path) -> float:
    """Seconds the search loop of one run takes in a fresh driver process (kills land within it)."""
    run = out / "calibrate"
    shutil.rmtree(run, ignore_errors=True)
    code = CHILD.format(src=str(ROOT / "src"), cfg=json.dumps(config(999)), run=str(run), create=True)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    done = [ln for ln in proc.stdout.splitlines() if ln.startswith("DONE")]
    if not done:
        raise RuntimeError(f"calibration run failed: {proc.stderr[-2000:]}")
    return float(done[0].split()[1])


def part_a(out: Path, seeds: int, kills_per_seed: int) -> dict[str, Any]:
    res = {"seeds": 0, "kills": 0, "finished_before_kill": 0, "candidates_finished_before_kills": 0,
           "lost": 0, "equal_to_reference": 0, "seconds": 0.0}
    t0 = time.perf_counter()
    window = calibrate(out)
    res["kill_window_seconds"] = window
    print(f"  a driver's search loop takes {window:.1f} s; kills land uniformly within it", flush=True)
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        ref_dir, run = out / f"ref_{seed}", out / f"killed_{seed}"
        for d in (ref_dir, run):
            shutil.rmtree(d, ignore_errors=True)
        ref = Study.create(config(seed), ref_dir, log=lambda *_: None)
        ref.optimize()
        ref.close()
        expected = rows(ref_dir)
        before: dict[int, tuple] = {}
        for k in range(kills_per_seed):
            done = len(list((run / "checkpoints").glob("gen_*.json"))) if k else 0
            if done >= 4:
                break
            # a resumed driver has only the remaining generations to run: aim the kill within them
            how = killed_run(run, seed, create=(k == 0), window=window * (4 - done) / 4, rng=rng)
            if (run / "checkpoints" / "gen_00004.json").exists():
                how = "finished"  # killed after its last checkpoint: nothing was left to lose
            res["kills" if how == "killed" else "finished_before_kill"] += 1
            before.update(rows(run, finished_only=True))
        study = Study.resume(run, log=lambda *_: None)
        study.optimize()
        study.close()
        final = rows(run)
        lost = sum(1 for cid, r in before.items() if final.get(cid) != r)
        res["candidates_finished_before_kills"] += len(before)
        res["lost"] += lost
        res["equal_to_reference"] += int(final == expected)
        res["seeds"] += 1
        print(f"  seed {seed}: {len(before)} finished before kills, lost {lost}, "
              f"equal to reference: {final == expected}", flush=True)
    res["seconds"] = time.perf_counter() - t0
    return res


def _big_state(g: int) -> dict[str, Any]:
    # mostly one long string: cheap to serialize, slow to write and fsync, so kills land mid-write often
    return {"next_id": g, "elapsed": 0.0, "strategy": {"population": [float(i) * g for i in range(1000)],
                                                       "blob": f"{g:08d}" * 2_000_000}}


def part_b(out: Path, kills: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    run = out / "ckpt"
    shutil.rmtree(run, ignore_errors=True)
    store = RunStore(run, create=True)
    store.write_checkpoint(1, _big_state(1))
    t = time.perf_counter()
    store.write_checkpoint(2, _big_state(2))
    write_s = time.perf_counter() - t
    res = {"kills": 0, "mid_write": 0, "load_failures": 0, "went_backwards": 0, "seconds": 0.0,
           "write_seconds": write_s}
    t0 = time.perf_counter()
    newest = 2
    for _ in range(kills):
        start = newest + 1
        pid = os.fork()
        if pid == 0:  # child: write checkpoints back to back until killed
            g = start
            while True:
                store.write_checkpoint(g, _big_state(g))
                g += 1
        if res["kills"] % 2 == 0:  # aimed: wait until a write is under way, then kill inside it
            deadline = time.perf_counter() + 10
            while time.perf_counter() < deadline and not any(
                    n.startswith(".gen_") for n in os.listdir(run / "checkpoints")):
                pass
            time.sleep(float(rng.uniform(0, write_s / 8)))
        else:  # anywhere in the write loop
            time.sleep(float(rng.uniform(0, 3 * write_s)))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        res["kills"] += 1
        tmps = list((run / "checkpoints").glob(".gen_*.tmp"))
        res["mid_write"] += int(bool(tmps))
        for p in tmps:
            p.unlink()
        state, warnings = store.latest_checkpoint()
        if state is None or warnings:
            res["load_failures"] += 1
            continue
        if state["generation"] < newest:
            res["went_backwards"] += 1
        newest = state["generation"]
        for p in sorted((run / "checkpoints").glob("gen_*.json"))[:-3]:  # keep the folder small
            p.unlink()
    store.close()
    res["seconds"] = time.perf_counter() - t0
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--kills-per-seed", type=int, default=2)
    ap.add_argument("--ckpt-kills", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "bench_runs" / "fault_soak"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("EVOFUSION_CACHE", str(out / "cache"))
    print(f"part B: {a.ckpt_kills} SIGKILLs during checkpoint writes", flush=True)
    b = part_b(out, a.ckpt_kills)
    print(f"part A: {a.seeds} seeds x {a.kills_per_seed} driver SIGKILLs at random moments", flush=True)
    A = part_a(out, a.seeds, a.kills_per_seed)
    print("\n## Fault soak\n")
    print("| fault | figure | result |\n|---|---|---|")
    print(f"| driver SIGKILL at a random moment, then resume | kills survived | {A['kills']} "
          f"(+{A['finished_before_kill']} runs that ended before the kill) over {A['seeds']} seeds |")
    print(f"| | finished candidates lost | {A['lost']} of {A['candidates_finished_before_kills']} |")
    print(f"| | final candidates equal to the uninterrupted run | {A['equal_to_reference']} of {A['seeds']} seeds |")
    print(f"| SIGKILL during a checkpoint write | kills | {b['kills']} ({b['mid_write']} landed mid-write) |")
    print(f"| | previous checkpoint failed to load | {b['load_failures']} |")
    print(f"| | newest loadable checkpoint went backwards | {b['went_backwards']} |")
    print(f"\nwall time: part A {A['seconds']:.0f} s, part B {b['seconds']:.0f} s "
          f"(one ~16 MB checkpoint write: {b['write_seconds'] * 1000:.0f} ms)")
    (out / "results.json").write_text(json.dumps({"driver_kills": A, "checkpoint_kills": b}, indent=1))
    ok = A["lost"] == 0 and A["equal_to_reference"] == A["seeds"] and b["load_failures"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
