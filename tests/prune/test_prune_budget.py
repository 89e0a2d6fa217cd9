"""Budget fill (prune/budget.py): layer-ratio genomes scaled up to a parameter target, as the search
space's repair (samples and children), in a PruneStudy, from the CLI; bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evofusion.cli import app
from evofusion.errors import ConfigError
from evofusion.genome.prune import PruneGenome
from evofusion.genome.prune_space import PruneSpace
from evofusion.prune import PruneStudy
from evofusion.prune.baselines import tilted_masks, uniform_masks
from evofusion.prune.budget import BudgetFill, largest_fitting, pruned_params
from evofusion.prune.config import validate_prune_config
from evofusion.strategies import COMPLETE, Result, Variation
from tests.prune.conftest import _cfg, full_and_stopped, quiet, rows_of


def _template(levels: int = 16) -> PruneGenome:
    groups = (16, 16, 16, 32, 32, 32, 64, 64, 64, 128, 128, 128)  # ResNet-18 at width 0.25
    return PruneGenome(teacher="t" * 16, arch="resnet18", width=0.25, in_channels=1, num_classes=10,
                       input_size=28, encoding="layer", levels=levels, groups=groups,
                       genes=tuple([levels] * len(groups)))


def _full_params(t: PruneGenome) -> int:
    return pruned_params(t)


def test_fill_lands_under_and_near_the_target_and_keeps_the_profile_shape() -> None:
    t = _template()
    full = _full_params(t)
    target = int(0.1 * full)
    fill = BudgetFill(target)
    thin_first = t.with_genes([4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1])
    out = fill(thin_first)
    n = pruned_params(out)
    assert n <= target
    # one more level on any gene the rounding left below the cap would cross the target, or the
    # count is within a few percent of it
    assert n >= 0.9 * target
    g = np.asarray(out.genes)
    assert (np.diff(g[[0, 3, 6, 9]]) <= 0).all(), "scaling keeps 'thin layers keep more'"
    assert fill(thin_first) is out  # memoized, deterministic


def test_fill_of_a_genome_over_the_target_scales_down() -> None:
    t = _template()
    target = int(0.05 * _full_params(t))
    out = BudgetFill(target)(t)  # the unpruned teacher: all genes at the top level
    assert pruned_params(out) <= target < pruned_params(t)


def test_fill_returns_the_top_when_it_fits_and_the_floor_when_nothing_does() -> None:
    t = _template()
    full = _full_params(t)
    assert BudgetFill(full + 10)(t.with_genes([1] * 12)).genes == t.genes
    floor = BudgetFill(1)(t.with_genes([8] * 12))
    assert floor.genes == tuple([1] * 12)


def test_largest_fitting_bisects_to_the_last_point_that_fits() -> None:
    calls: list[float] = []

    def fits(x: float) -> bool:
        calls.append(x)
        return x <= 0.3

    x = largest_fitting(fits, 0.0, 1.0, 20)
    assert 0.3 - 1e-5 < x <= 0.3 and len(calls) == 20
    assert largest_fitting(lambda _: False, 0.25, 1.0, 8) == 0.25  # none fits: the floor, not probed
    assert largest_fitting(lambda _: True, 0.0, 1.0, 10) == pytest.approx(1.0, abs=1e-3)


def test_fill_bad_input_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="target_params"):
        BudgetFill(0)
    channel = dataclasses.replace(_template(), encoding="channel", levels=8,
                                  genes=tuple([1] * sum(_template().groups)))
    with pytest.raises(ConfigError, match="encoding layer"):
        BudgetFill(1000)(channel)


def test_space_repair_applies_to_samples_and_variation_children() -> None:
    t = _template()
    target = int(0.1 * _full_params(t))
    fill = BudgetFill(target)
    space = PruneSpace(template=t, importance_fraction=0.0, keep_range=(0.1, 0.6), shape_sigma=0.3,
                       tilt_range=(0.0, 1.0), in_channels=1, input_size=28, num_classes=10, repair=fill)
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(6)]
    assert all(0.85 * target <= pruned_params(g) <= target for g in samples)
    assert len({g.genes for g in samples}) >= 4, "sampled profiles differ in shape"
    parents = [Result(100 + i, g, COMPLETE, {"accuracy": 0.5}) for i, g in enumerate(samples[:2])]
    var = Variation(space, mutation_ops=["mask_flip"], crossover_ops=["mask_uniform"])
    for _ in range(4):
        child = var.make_child(parents, rng, set()).genome
        assert pruned_params(child) <= target
        assert fill(child) == child  # already on the budget surface


def test_tilted_masks_keep_more_of_thin_groups() -> None:
    scores = [list(range(16)), list(range(128))]
    u = [int(m.sum()) for m in uniform_masks(scores, 0.25)]
    tl = [int(m.sum()) for m in tilted_masks(scores, 0.25, 0.5)]
    assert u == [4, 32] and tl[0] == 4 and tl[1] == round(0.25 * 8 ** -0.5 * 128)
    assert tilted_masks(scores, 0.25, 0.0)[1].sum() == 32


def test_config_fill_budget_defaults_and_refusals() -> None:
    assert validate_prune_config({"teacher": "t", "encoding": "layer", "target_params": 100}).fills_budget
    assert not validate_prune_config({"teacher": "t", "encoding": "layer"}).fills_budget
    assert not validate_prune_config({"teacher": "t", "target_params": 100}).fills_budget
    assert not validate_prune_config({"teacher": "t", "encoding": "layer", "target_params": 100,
                                      "fill_budget": False}).fills_budget
    with pytest.raises(ConfigError, match="prune.fill_budget|fill_budget"):
        validate_prune_config({"teacher": "t", "target_params": 100, "fill_budget": True})
    with pytest.raises(ConfigError, match="tilt_range"):
        validate_prune_config({"teacher": "t", "tilt_range": [1.0, 0.0]})


def test_study_with_budget_fill_puts_every_candidate_on_the_budget(teacher_dir: Path, tmp_path: Path) -> None:
    prune = {"teacher": str(teacher_dir), "target_params": 1500, "eval_every": 3, "encoding": "layer",
             "levels": 16}
    study = PruneStudy.create(_cfg(distill={"steps": 6, "batch_size": 64, "patience": 2}), tmp_path / "run", prune=prune, log=lambda *a: None)
    try:
        study.optimize()
        rows = study.store.candidates()
        assert len(rows) == 8 and {r["status"] for r in rows} == {"COMPLETE"}
        counts = [r["objective_values"]["params"] for r in rows]
        assert max(counts) <= 1500 and min(counts) >= 0.8 * 1500, counts
        assert study.setup.teacher_info["fill_budget"] is True
    finally:
        study.close()


def test_cli_no_fill_budget_and_refusal(teacher_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["prune", "--teacher", str(teacher_dir), "--data", "digits", "--limit", "300", "--population", "4",
              "--generations", "1", "--steps", "4", "--final-epochs", "0.2", "--target-params", "1500",
              "--quiet", "--json"]
    bad = runner.invoke(app, [*common, "--fill-budget", "--run-dir", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "fill_budget" in bad.output
    assert not (tmp_path / "bad").exists()
    ok = runner.invoke(app, [*common, "--encoding", "layer", "--no-fill-budget", "--run-dir", str(tmp_path / "ok")])
    assert ok.exit_code == 0, ok.output
    from evofusion.store import RunStore

    store = RunStore(tmp_path / "ok", lock=False)
    try:
        assert store.get_meta("prune")["fill_budget"] is False
    finally:
        store.close()


def test_budget_fill_run_resumes_exactly_and_an_older_run_resumes_without_it(teacher_dir: Path,
                                                                            tmp_path: Path) -> None:
    prune = {"teacher": str(teacher_dir), "target_params": 1500, "eval_every": 3, "encoding": "layer", "levels": 16}
    a = full_and_stopped(prune, tmp_path)
    resumed = PruneStudy.resume(tmp_path / "part", overrides={"generations": 2}, log=quiet)
    resumed.optimize()
    assert rows_of(resumed) == a
    # a run stored before these settings existed: no budget fill, no shaped sampling on resume
    meta = resumed.store.get_meta("prune")
    resumed.store.set_meta("prune", {k: v for k, v in meta.items()
                                     if k not in ("fill_budget", "shape_sigma", "tilt_range")})
    resumed.close()
    old = PruneStudy.resume(tmp_path / "part", log=quiet)
    try:
        assert old.setup.space.repair is None and old.setup.space.shape_sigma == 0.0
    finally:
        old.close()


def test_fill_grows_the_other_groups_when_some_are_at_the_top_level() -> None:
    t = _template()
    target = int(0.1 * _full_params(t))
    capped = t.with_genes([32 // 2, 16, 16, 12, 10, 12, 5, 7, 7, 2, 2, 2])  # the first three at the top (16)
    out = BudgetFill(target)(capped)
    assert out.genes[:3] == (16, 16, 16)
    assert 0.95 * target <= pruned_params(out) <= target, (out.genes, pruned_params(out), target)
