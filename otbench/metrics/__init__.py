"""Sample-quality metrics for generators trained on the ``otbench.data`` sets."""

from __future__ import annotations

from .classifier import DigitsClassifier, digits_classifier, train_digits_classifier
from .distances import frechet_distance, w2_heldout
from .evaluate import evaluate
from .modes import mode_quality

__all__ = [
    "DigitsClassifier",
    "digits_classifier",
    "evaluate",
    "frechet_distance",
    "mode_quality",
    "train_digits_classifier",
    "w2_heldout",
]
