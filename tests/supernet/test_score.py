"""A search over a supernet's subnets: scored from the shared weights, constraints, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from evofusion import Study
from evofusion.errors import ConfigError
from evofusion.genome import genome_from_dict
from evofusion.supernet import Supernet, SupernetSpec
from evofusion.supernet.score import score_subnet
from tests.conftest import tiny_config
from tests.engine.run_kinds import trained_supernet

QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_supernet(tmp_path_factory.mktemp("sn"))


def _cfg(sn: Path, **over) -> dict:
    return tiny_config(generations=2, supernet={"run": str(sn), "val_size": 100},
                       **{"objectives.constraints": ["params <= 1200"], "final.top_k": 0, **over})


def test_candidates_are_subnets_scored_from_the_shared_weights_without_training(tmp_path: Path,
                                                                                 supernet_dir: Path) -> None:
    study = Study.create(_cfg(supernet_dir), tmp_path / "run", **QUIET)
    try:
        study.optimize()
        summary = json.loads((supernet_dir / "supernet.json").read_text())
        spec = SupernetSpec.from_dict(summary["spec"])
        net = Supernet(spec)
        net.load_state_dict(load_file(supernet_dir / "supernet.safetensors"))
        rows = study.store.candidates("COMPLETE")
        assert len(rows) >= 6
        ref = study.setup.context.extra["scorer"]
        from evofusion.engine.context import load_arrays

        arrays = load_arrays(study.setup.context.data_dir, study.setup.context.teacher_dir)
        for r in rows:
            g = genome_from_dict(r["genome"])
            assert spec.contains(g) and r["objective_values"]["params"] <= 1200
            assert r["train"]["steps"] == 0 and r["train"]["scorer"] == "supernet"
            model, acc = score_subnet(ref, g, arrays, torch.device("cpu"))
            assert acc == pytest.approx(r["objective_values"]["accuracy"])
            saved = load_file(study.store.resolve(r["weights_file"]))
            assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
        # the candidate weights are the subnet's: the usual export path takes them
        best = study.best_candidates(1)[0]
        out = study.export(best["id"], tmp_path / "export")
        assert (out / "genome.json").exists()
    finally:
        study.close()


def test_a_finished_search_fine_tunes_its_winners_from_the_extracted_weights(tmp_path: Path,
                                                                             supernet_dir: Path) -> None:
    study = Study.create(_cfg(supernet_dir, **{"final.top_k": 1}), tmp_path / "run", **QUIET)
    try:
        finals = study.complete(log=lambda *_: None)
        assert len(finals) == 1 and 0 <= finals[0]["test_accuracy"] <= 1
    finally:
        study.close()


def test_bad_supernet_references_are_named(tmp_path: Path, supernet_dir: Path) -> None:
    with pytest.raises(ConfigError, match="supernet.run.*holds no trained supernet"):
        Study.create(_cfg(tmp_path / "nothing"), tmp_path / "r1", **QUIET)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.db").write_bytes(b"")
    with pytest.raises(ConfigError, match="evofusion resume"):
        Study.create(_cfg(unfinished), tmp_path / "r2", **QUIET)
    broken = tmp_path / "broken"
    shutil.copytree(supernet_dir, broken)
    (broken / "supernet.safetensors").unlink()
    with pytest.raises(ConfigError, match="supernet.safetensors.*missing"):
        Study.create(_cfg(broken), tmp_path / "r3", **QUIET)
    other = tmp_path / "other"
    shutil.copytree(supernet_dir, other)
    summary = json.loads((other / "supernet.json").read_text())
    summary["spec"]["in_channels"] = 3
    (other / "supernet.json").write_text(json.dumps(summary))
    with pytest.raises(ConfigError, match="supernet.run.*trained for"):
        Study.create(_cfg(other), tmp_path / "r4", **QUIET)
    with pytest.raises(ConfigError, match="trained on other data"):
        Study.create(_cfg(supernet_dir, **{"data.limit": 250}), tmp_path / "r6", **QUIET)
    with pytest.raises(ConfigError, match="scheduler"):
        Study.create(_cfg(supernet_dir, scheduler={"rungs": [5, 10]}), tmp_path / "r5", **QUIET)
    assert not any((tmp_path / f"r{i}").exists() for i in range(1, 7))
