"""Every sample-quality metric that applies to a data set."""

from __future__ import annotations

from torch import Tensor

from ..data import Dataset
from ..validation import check_samples
from .classifier import digits_classifier
from .distances import frechet_distance, w2_heldout
from .modes import mode_quality

__all__ = ["evaluate"]


def evaluate(dataset: Dataset, samples: Tensor, seed: int = 0) -> dict[str, float]:
    """Measure generated samples against a data set's held-out split.

    Args:
        dataset: the data set the generator was trained on.
        samples: generated samples, (n, *dataset.sample_shape).
        seed: seed of the subsampling in :func:`w2_heldout`.

    Returns:
        ``w2_heldout`` for every data set. Data sets with modes add
        ``hq_fraction`` and ``modes_covered`` (see :func:`mode_quality`).
        Digits add ``frechet_distance`` between classifier features of the
        samples and of the held-out images, and ``classifier_accuracy``, the
        held-out accuracy of the classifier that computes those features.

    Raises:
        ValueError: ``dataset`` is not a ``Dataset``, or ``samples`` is empty,
            non-finite or not of shape (n, *dataset.sample_shape).
    """
    if not isinstance(dataset, Dataset):
        raise ValueError(
            f"dataset={dataset!r} is invalid; expected an otbench.data.Dataset from otbench.data.load"
        )
    samples = check_samples("samples", samples, keep_image=True)
    if tuple(samples.shape[1:]) != dataset.sample_shape:
        raise ValueError(
            f"samples have shape {tuple(samples.shape)}; expected (n, *{dataset.sample_shape}) "
            f"for data set {dataset.name!r}"
        )

    metrics = {"w2_heldout": w2_heldout(samples, dataset.test, seed=seed)}
    if dataset.modes is not None and dataset.mode_std is not None:
        quality = mode_quality(samples.flatten(start_dim=1), dataset.modes, dataset.mode_std)
        metrics["hq_fraction"] = quality["hq_fraction"]
        metrics["modes_covered"] = quality["modes_covered"]
    if dataset.name == "digits":
        classifier = digits_classifier()
        metrics["frechet_distance"] = frechet_distance(
            classifier.features(samples), classifier.features(dataset.test)
        )
        metrics["classifier_accuracy"] = classifier.accuracy
    return metrics
