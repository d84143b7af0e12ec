"""The generator trainer: the outer loop of a Wasserstein generative model.

Each generator step has three phases:

1. draw a data batch ``y`` and generator samples ``x = G(z)``;
2. compute ``loss = estimator(x, y)``, the estimate of W_p. The estimator runs
   its own inner loop first: critic steps, Sinkhorn iterations or the LP;
3. take one Adam step on the generator's parameters.

The trainer times the inner loop and the whole step, evaluates the generator's
sample quality on a schedule, and keeps sample snapshots drawn from fixed
noise, in the manner of the WGAN example scripts (Arjovsky et al. 2017,
"Wasserstein GAN"; Gulrajani et al. 2017, "Improved Training of Wasserstein
GANs").

Example, with ``dataset`` one of the data sets of ``otbench.data``::

    trainer = Trainer(otbench.estimator("sinkhorn", p=2), dataset, steps=200)
    result = trainer.run()
    result.final["w2_heldout"]
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from .estimators.base import Estimator
from .models import Generator
from .validation import check_positive

__all__ = ["StepRecord", "Trainer", "TrainingData", "TrainingResult"]

logger = logging.getLogger(__name__)


class TrainingData(Protocol):
    """Interface of a training data set, as the trainer uses it."""

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample."""
        ...

    @property
    def test(self) -> Tensor:
        """Held-out samples, shape (N, *sample_shape)."""
        ...

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Draw ``n`` training samples, shape (n, *sample_shape)."""
        ...


@dataclass(frozen=True)
class StepRecord:
    """Timings and loss of one generator step.

    Attributes:
        step: number of generator updates done, counting this one (1 for the first step).
        loss: the estimator's value at this step (W_p, in the units of the samples).
        inner_seconds: seconds of the estimator's inner loop (``last_solve.seconds``).
        step_seconds: seconds of the whole step: sampling, estimator call, backward and update.
        elapsed_seconds: training seconds up to the end of this step, evaluation excluded.
    """

    step: int
    loss: float
    inner_seconds: float
    step_seconds: float
    elapsed_seconds: float


@dataclass
class TrainingResult:
    """Everything one training run measured.

    Attributes:
        steps: one record per generator step.
        evaluations: one row per evaluation, with ``step``, ``elapsed_seconds``
            and one key per metric returned by the evaluation function.
        snapshots: generator samples from the fixed noise, keyed by the step at
            which they were taken; each is a CPU tensor (n_snapshot, *sample_shape).
        final: the metrics of the last evaluation.
    """

    steps: list[StepRecord]
    evaluations: list[dict[str, float]]
    snapshots: dict[int, Tensor]
    final: dict[str, float]


class Trainer:
    """Train a generator by minimising a Wasserstein estimate against a data set.

    Args:
        estimator: the loss; ``estimator(x, y)`` returns a differentiable
            estimate of W_p between generator samples ``x`` and data ``y``.
        dataset: training data with ``sample_shape``, ``sample(n, generator)``
            and held-out samples ``test``. Image data (``sample_shape`` of length 3)
            lies in [-1, 1], so the default generator ends with tanh.
        steps: number of generator updates.
        batch_size: samples per side at each step (data batch and generator batch).
        lr: Adam learning rate of the generator.
        betas: Adam coefficients (beta1, beta2), each in [0, 1).
        eval_every: evaluate every this many steps; step 0 and the last step
            are always evaluated.
        n_eval: generator samples passed to each evaluation.
        n_snapshot: generator samples kept in each snapshot.
        latent_dim: dimension of the Gaussian noise fed to the generator.
        seed: seed of the generator's initialisation, the critic's
            initialisation, data batches and noise. The same seed gives the same
            run on the same CPU and library versions; GPU kernels may not be
            deterministic. The constructor (for the default generator) and
            ``run`` reseed torch's global random number generator with it.
        generator: a module mapping noise (n, latent_dim) to samples
            (n, *sample_shape); default ``otbench.models.Generator``.
        evaluate: a function ``(dataset, samples, seed) -> dict[str, float]``;
            default ``otbench.metrics.evaluate``, which accepts only the data
            sets of ``otbench.data``.
        callback: called as ``callback("step", row)`` after each step and
            ``callback("eval", row)`` after each evaluation.

    Raises:
        ValueError: an invalid argument; the message names it.
    """

    def __init__(
        self,
        estimator: Estimator,
        dataset: TrainingData,
        *,
        steps: int = 500,
        batch_size: int = 256,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.5, 0.9),
        eval_every: int = 100,
        n_eval: int = 1000,
        n_snapshot: int = 256,
        latent_dim: int = 8,
        seed: int = 0,
        generator: nn.Module | None = None,
        evaluate: Callable[[Any, Tensor, int], dict[str, float]] | None = None,
        callback: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        _check_estimator(estimator)
        _check_dataset(dataset)
        for name, value in (
            ("steps", steps),
            ("batch_size", batch_size),
            ("eval_every", eval_every),
            ("n_eval", n_eval),
            ("n_snapshot", n_snapshot),
            ("latent_dim", latent_dim),
        ):
            check_positive(name, value, integer=True)
        check_positive("lr", lr)
        _check_betas(betas)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r} is invalid; expected a non-negative integer")
        for name, function in (("evaluate", evaluate), ("callback", callback)):
            if function is not None and not callable(function):
                raise ValueError(f"{name}={function!r} is invalid; expected a callable or None")

        self.estimator = estimator
        self.dataset = dataset
        self.steps = steps
        self.batch_size = batch_size
        self.lr = float(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eval_every = eval_every
        self.n_eval = n_eval
        self.n_snapshot = n_snapshot
        self.latent_dim = latent_dim
        self.seed = seed
        self.evaluate = evaluate
        self.callback = callback

        sample_shape = tuple(int(s) for s in dataset.sample_shape)
        if generator is None:
            torch.manual_seed(seed)
            generator = Generator(latent_dim, sample_shape, tanh=len(sample_shape) == 3)
        else:
            _check_generator(generator, latent_dim)
        self.generator = generator
        self.sample_shape = sample_shape

    def run(self) -> TrainingResult:
        """Train the generator for ``steps`` updates and return what was measured.

        Returns:
            A ``TrainingResult``: per-step records, evaluations, snapshots and
            the final metrics.

        Raises:
            FloatingPointError: the loss became NaN or inf at some step.
            ValueError: the generator's output does not have the data's sample shape.
        """
        generator = self.generator
        parameter = next(generator.parameters())
        device, dtype = parameter.device, parameter.dtype

        # Reseed torch's global random number generator, because a critic
        # estimator builds its network on its first call and its inner loop may
        # draw random numbers (gradient-penalty interpolation).
        torch.manual_seed(self.seed)
        rng = torch.Generator().manual_seed(self.seed)
        snapshot_noise = self._noise(self.n_snapshot, rng, device, dtype)
        eval_noise = self._noise(self.n_eval, rng, device, dtype)
        optimizer = torch.optim.Adam(generator.parameters(), lr=self.lr, betas=self.betas)

        result = TrainingResult(steps=[], evaluations=[], snapshots={}, final={})
        elapsed = 0.0
        logger.info(
            "training %s with estimator %r for %d steps, batch size %d",
            type(generator).__name__, self.estimator.name, self.steps, self.batch_size,
        )
        self._evaluate(result, 0, elapsed, eval_noise, snapshot_noise)

        for step in range(1, self.steps + 1):
            generator.train()
            _synchronize(device)
            start = time.perf_counter()

            # Phase 1: a data batch y and generator samples x = G(z).
            y = self.dataset.sample(self.batch_size, rng).to(device=device, dtype=dtype)
            x = generator(self._noise(self.batch_size, rng, device, dtype))

            # Phase 2: the estimator's inner loop, then the W_p estimate.
            loss = self.estimator(x, y)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(
                    f"the loss is {loss_value} at step {step} with estimator "
                    f"{self.estimator.name!r} ({self.estimator.extra_repr()}); "
                    f"lower lr (now {self.lr:g}) or change the estimator's parameters"
                )

            # Phase 3: one generator update.
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            _synchronize(device)
            step_seconds = time.perf_counter() - start
            elapsed += step_seconds
            solve = self.estimator.last_solve
            record = StepRecord(
                step=step,
                loss=loss_value,
                inner_seconds=solve.seconds if solve is not None else 0.0,
                step_seconds=step_seconds,
                elapsed_seconds=elapsed,
            )
            result.steps.append(record)
            if self.callback is not None:
                self.callback("step", asdict(record))

            if step % self.eval_every == 0 or step == self.steps:
                self._evaluate(result, step, elapsed, eval_noise, snapshot_noise)

        result.final = {
            key: value
            for key, value in result.evaluations[-1].items()
            if key not in ("step", "elapsed_seconds")
        }
        logger.info("training finished after %.3g s: %s", elapsed, result.final)
        return result

    def _noise(self, n: int, rng: torch.Generator, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Draw (n, latent_dim) standard Gaussian noise from ``rng`` on ``device``."""
        return torch.randn(n, self.latent_dim, generator=rng).to(device=device, dtype=dtype)

    def _check_output(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(
                f"generator output has sample shape {tuple(x.shape[1:])} but the data "
                f"set's sample_shape is {self.sample_shape}; expected them to match"
            )

    def _evaluate(
        self,
        result: TrainingResult,
        step: int,
        elapsed: float,
        eval_noise: Tensor,
        snapshot_noise: Tensor,
    ) -> None:
        """Evaluate the generator, take a snapshot, and append both to ``result``."""
        evaluate: Callable[[Any, Tensor, int], dict[str, float]] | None = self.evaluate
        if evaluate is None:
            from .metrics import evaluate as default_evaluate

            # The default accepts only otbench.data data sets; it raises ValueError for others.
            evaluate = cast(Callable[[Any, Tensor, int], dict[str, float]], default_evaluate)

        self.generator.eval()
        with torch.no_grad():
            samples = self.generator(eval_noise).detach().cpu()
            result.snapshots[step] = self.generator(snapshot_noise).detach().cpu()
        self._check_output(samples)
        metrics = evaluate(self.dataset, samples, self.seed)

        row: dict[str, float] = {"step": step, "elapsed_seconds": elapsed}
        row.update({key: float(value) for key, value in metrics.items()})
        result.evaluations.append(row)
        logger.debug("evaluation at step %d: %s", step, metrics)
        if self.callback is not None:
            self.callback("eval", dict(row))


def _synchronize(device: torch.device) -> None:
    """Wait for queued CUDA kernels, so that a wall-clock reading covers them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_estimator(estimator: object) -> None:
    if not isinstance(estimator, Estimator):
        raise ValueError(
            f"estimator={estimator!r} is invalid; expected an otbench Estimator, "
            f"for example otbench.estimator('sinkhorn', p=2)"
        )


def _check_dataset(dataset: object) -> None:
    missing = [name for name in ("sample_shape", "sample", "test") if not hasattr(dataset, name)]
    if missing:
        raise ValueError(
            f"dataset={dataset!r} is invalid: it has no {', '.join(missing)}; expected an "
            f"object with sample_shape, sample(n, generator) and test, such as otbench.data.load(name)"
        )
    shape = dataset.sample_shape  # type: ignore[attr-defined]
    valid = len(shape) > 0 and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and int(s) > 0 for s in shape
    )
    if not valid:
        raise ValueError(
            f"dataset.sample_shape={shape!r} is invalid; expected a non-empty tuple of positive integers"
        )


def _check_betas(betas: object) -> None:
    valid = (
        isinstance(betas, (tuple, list))
        and len(betas) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= b < 1.0 for b in betas)
    )
    if not valid:
        raise ValueError(f"betas={betas!r} is invalid; expected two numbers in [0, 1), such as (0.5, 0.9)")


def _check_generator(generator: object, latent_dim: int) -> None:
    if not isinstance(generator, nn.Module) or not any(True for _ in generator.parameters()):
        raise ValueError(
            f"generator={generator!r} is invalid; expected a torch.nn.Module with parameters "
            f"mapping noise (n, latent_dim) to samples (n, *sample_shape)"
        )
    own = getattr(generator, "latent_dim", latent_dim)
    if own != latent_dim:
        raise ValueError(
            f"latent_dim={latent_dim} does not match the generator's latent_dim={own}; "
            f"pass latent_dim={own}"
        )
