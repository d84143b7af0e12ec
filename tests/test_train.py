"""Tests of the generator trainer on small real data sets and real estimators."""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import ot
import pytest
import torch
from torch import Tensor

import otbench
from otbench.estimators.base import Capabilities, Estimator, SolveResult
from otbench.models import Generator
from otbench.train import StepRecord, Trainer, TrainingResult


class Blob:
    """A 2-D Gaussian blob N(center, std^2 I) with a held-out test set."""

    sample_shape = (2,)

    def __init__(self, center: tuple[float, float] = (4.0, 4.0), std: float = 0.5, n_test: int = 300) -> None:
        self.center = torch.tensor(center)
        self.std = std
        self.test = self.sample(n_test, torch.Generator().manual_seed(12345))

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return self.center + self.std * torch.randn(n, 2, generator=generator)


class TinyImages:
    """4x4 one-channel images in [-1, 1]: a bright top half plus noise."""

    sample_shape = (1, 4, 4)

    def __init__(self) -> None:
        self.test = self.sample(100, torch.Generator().manual_seed(7))

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        base = torch.zeros(1, 4, 4)
        base[:, :2, :] = 0.8
        return (base + 0.1 * torch.randn(n, 1, 4, 4, generator=generator)).clamp(-1.0, 1.0)


def heldout_w2(dataset: Any, samples: Tensor, seed: int) -> dict[str, float]:
    """Exact W_2 between generator samples and the held-out data (POT's network simplex)."""
    x = samples.flatten(1).double().numpy()
    y = dataset.test.flatten(1).double().numpy()
    value = ot.emd2(ot.unif(len(x)), ot.unif(len(y)), ot.dist(x, y))
    return {"w2_heldout": math.sqrt(max(float(value), 0.0))}


class NanLoss(Estimator):
    """An estimator whose value is NaN, to exercise the trainer's check."""

    name: ClassVar[str] = "nan-loss"
    capabilities: ClassVar[Capabilities] = Capabilities(orders=(1,), weights=False, inner_loop=False, exact=False)

    def _estimate(self, x: Tensor, y: Tensor, a: Tensor | None, b: Tensor | None) -> tuple[Tensor, SolveResult]:
        value = x.sum() * float("nan")
        return value, SolveResult(value=float("nan"), iterations=0, converged=False, seconds=0.0)


def small_trainer(seed: int = 0, **overrides: Any) -> Trainer:
    options: dict[str, Any] = dict(
        steps=30, batch_size=64, eval_every=10, n_eval=128, n_snapshot=16, seed=seed, evaluate=heldout_w2
    )
    options.update(overrides)
    estimator = options.pop("estimator", None) or otbench.estimator("exact", p=2)
    return Trainer(estimator, options.pop("dataset", None) or Blob(), **options)


@pytest.fixture(scope="module")
def exact_run() -> TrainingResult:
    return small_trainer(seed=0).run()


@pytest.fixture(scope="module")
def repeated_run() -> TrainingResult:
    return small_trainer(seed=0).run()


@pytest.fixture(scope="module")
def other_seed_run() -> TrainingResult:
    return small_trainer(seed=1).run()


def test_same_seed_same_losses(exact_run: TrainingResult, repeated_run: TrainingResult) -> None:
    assert [r.loss for r in repeated_run.steps] == [r.loss for r in exact_run.steps]


def test_same_seed_same_snapshots(exact_run: TrainingResult, repeated_run: TrainingResult) -> None:
    assert repeated_run.snapshots.keys() == exact_run.snapshots.keys()
    for step, snapshot in exact_run.snapshots.items():
        assert torch.equal(repeated_run.snapshots[step], snapshot), f"snapshot at step {step} differs"


def test_other_seed_other_losses(exact_run: TrainingResult, other_seed_run: TrainingResult) -> None:
    assert [r.loss for r in other_seed_run.steps] != [r.loss for r in exact_run.steps]


def test_other_seed_other_snapshots(exact_run: TrainingResult, other_seed_run: TrainingResult) -> None:
    assert not torch.equal(other_seed_run.snapshots[30], exact_run.snapshots[30])


def test_step_records_numbered(exact_run: TrainingResult) -> None:
    assert [r.step for r in exact_run.steps] == list(range(1, 31))
    assert all(isinstance(r, StepRecord) for r in exact_run.steps)


def test_elapsed_increasing(exact_run: TrainingResult) -> None:
    elapsed = [r.elapsed_seconds for r in exact_run.steps]
    assert all(later > earlier for earlier, later in zip(elapsed, elapsed[1:]))


def test_elapsed_sums_step_seconds(exact_run: TrainingResult) -> None:
    total = sum(r.step_seconds for r in exact_run.steps)
    assert exact_run.steps[-1].elapsed_seconds == pytest.approx(total, rel=1e-9)


def test_inner_within_step_seconds(exact_run: TrainingResult) -> None:
    for record in exact_run.steps:
        assert 0.0 < record.inner_seconds <= record.step_seconds, f"step {record.step}"


def test_losses_finite_positive(exact_run: TrainingResult) -> None:
    assert all(math.isfinite(r.loss) and r.loss > 0.0 for r in exact_run.steps)


def test_evaluation_schedule(exact_run: TrainingResult) -> None:
    assert [row["step"] for row in exact_run.evaluations] == [0, 10, 20, 30]


def test_evaluation_rows_keys(exact_run: TrainingResult) -> None:
    for row in exact_run.evaluations:
        assert set(row) == {"step", "elapsed_seconds", "w2_heldout"}


def test_evaluation_elapsed_matches_steps(exact_run: TrainingResult) -> None:
    by_step = {r.step: r.elapsed_seconds for r in exact_run.steps}
    by_step[0] = 0.0
    for row in exact_run.evaluations:
        assert row["elapsed_seconds"] == by_step[row["step"]]


def test_snapshots_at_evaluations(exact_run: TrainingResult) -> None:
    assert sorted(exact_run.snapshots) == [0, 10, 20, 30]
    for snapshot in exact_run.snapshots.values():
        assert snapshot.shape == (16, 2)


def test_final_is_last_evaluation(exact_run: TrainingResult) -> None:
    assert exact_run.final == {"w2_heldout": exact_run.evaluations[-1]["w2_heldout"]}


def test_schedule_ends_at_last_step() -> None:
    result = small_trainer(steps=25, eval_every=10).run()
    assert [row["step"] for row in result.evaluations] == [0, 10, 20, 25]


def test_elapsed_excludes_evaluation() -> None:
    def slow_evaluate(dataset: Any, samples: Tensor, seed: int) -> dict[str, float]:
        time.sleep(0.2)
        return heldout_w2(dataset, samples, seed)

    start = time.perf_counter()
    result = small_trainer(steps=10, eval_every=5, evaluate=slow_evaluate).run()
    wall = time.perf_counter() - start
    assert result.steps[-1].elapsed_seconds < wall - 3 * 0.2


def test_evaluate_receives_samples_and_seed() -> None:
    calls: list[tuple[tuple[int, ...], int]] = []

    def record_call(dataset: Any, samples: Tensor, seed: int) -> dict[str, float]:
        calls.append((tuple(samples.shape), seed))
        return {"mean_x": float(samples[:, 0].mean())}

    small_trainer(seed=3, steps=4, eval_every=2, n_eval=50, evaluate=record_call).run()
    assert calls == [((50, 2), 3)] * 3


def test_callback_events() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    small_trainer(steps=6, eval_every=3, callback=lambda kind, row: events.append((kind, row))).run()
    kinds = [kind for kind, _ in events]
    assert kinds == ["eval"] + ["step"] * 3 + ["eval"] + ["step"] * 3 + ["eval"]
    assert set(events[1][1]) == {"step", "loss", "inner_seconds", "step_seconds", "elapsed_seconds"}
    assert events[-1][1]["step"] == 6


def test_custom_generator_used() -> None:
    generator = Generator(4, (2,), hidden=16, depth=1)
    trainer = small_trainer(steps=3, latent_dim=4, generator=generator)
    before = [p.detach().clone() for p in generator.parameters()]
    trainer.run()
    assert trainer.generator is generator
    assert any(not torch.equal(b, p) for b, p in zip(before, generator.parameters()))


def test_image_data_tanh_generator() -> None:
    trainer = small_trainer(
        dataset=TinyImages(), estimator=otbench.estimator("sinkhorn", p=2), steps=3, eval_every=3, batch_size=32
    )
    result = trainer.run()
    assert trainer.generator.tanh is True
    assert result.snapshots[3].shape == (16, 1, 4, 4)
    assert float(result.snapshots[3].abs().max()) <= 1.0


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::otbench.estimators.base.ConvergenceWarning")
def test_sinkhorn_moves_generator_to_blob() -> None:
    # The data blob sits at (4, 4), about 5.7 away from the generator's initial
    # output near the origin, so a working loss must bring W_2 well down. The
    # loose Sinkhorn settings keep the test short; early steps may warn that
    # the marginals are off, which does not matter for the direction of descent.
    result = small_trainer(
        estimator=otbench.estimator("sinkhorn", p=2, blur=0.2, scaling=0.7),
        steps=100, batch_size=64, eval_every=50, n_eval=300,
    ).run()
    w2 = [row["w2_heldout"] for row in result.evaluations]
    assert w2[0] > 4.0
    assert w2[-1] < 0.25 * w2[0]
    assert w2[-1] < w2[1]


@pytest.mark.slow
def test_critic_gp_runs_inner_loop() -> None:
    result = small_trainer(estimator=otbench.estimator("critic-gp"), steps=5, eval_every=5, batch_size=32).run()
    assert len(result.steps) == 5
    assert all(r.inner_seconds > 0.0 for r in result.steps)
    assert all(math.isfinite(r.loss) for r in result.steps)


def test_default_evaluate_on_mixture() -> None:
    from otbench.data import load

    dataset = load("8gaussians")
    result = Trainer(
        otbench.estimator("sinkhorn", p=2), dataset, steps=2, batch_size=32, eval_every=2, n_eval=100, n_snapshot=8
    ).run()
    assert {"w2_heldout", "hq_fraction"} <= set(result.final)
    assert result.final["w2_heldout"] > 0.0


def test_nan_loss_raises() -> None:
    with pytest.raises(FloatingPointError, match=r"step 1 with estimator 'nan-loss'"):
        small_trainer(estimator=NanLoss(p=1), steps=3).run()


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("steps", 0),
        ("steps", -3),
        ("steps", 2.5),
        ("batch_size", 0),
        ("batch_size", True),
        ("lr", 0.0),
        ("lr", -1e-3),
        ("lr", float("nan")),
        ("betas", (1.0, 0.9)),
        ("betas", (0.5,)),
        ("eval_every", 0),
        ("n_eval", 0),
        ("n_snapshot", -1),
        ("latent_dim", 0),
        ("seed", -1),
        ("seed", 1.5),
        ("evaluate", "w2"),
        ("callback", 3),
    ],
)
def test_invalid_argument_rejected(argument: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"^{argument}="):
        small_trainer(**{argument: value})


def test_estimator_not_estimator_rejected() -> None:
    with pytest.raises(ValueError, match=r"^estimator="):
        Trainer(ot.emd2, Blob())  # type: ignore[arg-type]


def test_dataset_without_sample_rejected() -> None:
    with pytest.raises(ValueError, match=r"^dataset=.*no sample"):
        Trainer(otbench.estimator("exact"), object())  # type: ignore[arg-type]


def test_dataset_bad_shape_rejected() -> None:
    dataset = Blob()
    dataset.sample_shape = (0,)  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"^dataset.sample_shape="):
        Trainer(otbench.estimator("exact"), dataset)


def test_generator_latent_mismatch_rejected() -> None:
    with pytest.raises(ValueError, match=r"^latent_dim=8 does not match"):
        small_trainer(generator=Generator(4, (2,)))


def test_generator_output_shape_rejected() -> None:
    trainer = small_trainer(generator=Generator(8, (3,)), steps=2)
    with pytest.raises(ValueError, match=r"sample shape \(3,\)"):
        trainer.run()
