"""A small digits classifier whose hidden layer gives features for the Frechet distance."""

from __future__ import annotations

import functools
import logging
import os
import pickle
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from ..validation import check_samples

__all__ = ["DigitsClassifier", "digits_classifier", "train_digits_classifier"]

logger = logging.getLogger(__name__)

# Bump when the architecture or training changes, so stale caches are not read.
CLASSIFIER_VERSION = "mlp-64-128-64-10-v2"
TRAINING_SEED = 0
TRAINING_STEPS = 200
LEARNING_RATE = 1e-2
WEIGHT_DECAY = 1e-4
FEATURE_WIDTH = 64


class DigitsClassifier(nn.Module):
    """An MLP 64 -> 128 -> 64 -> 10 with ReLU, for 8x8 digits scaled to [-1, 1].

    Attributes:
        accuracy: fraction of the held-out digits classified correctly, in [0, 1].
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, 128),
            nn.ReLU(),
            nn.Linear(128, FEATURE_WIDTH),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_WIDTH, 10)
        self.accuracy = float("nan")

    def forward(self, x: Tensor) -> Tensor:
        """Return class logits (n, 10) for images (n, 1, 8, 8) or flat (n, 64)."""
        return self.head(self.body(x))

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        """Return the hidden-layer activations (n, 64), float32, without gradients.

        Raises:
            ValueError: ``x`` is not a finite batch of (n, 1, 8, 8) images or
                (n, 64) vectors.
        """
        x = check_samples("x", x)
        if x.shape[1] != 64:
            raise ValueError(
                f"x has shape {tuple(x.shape)}; expected 8x8 digits as (n, 1, 8, 8) or (n, 64)"
            )
        was_training = self.training
        self.eval()
        try:
            return self.body(x.detach().to(torch.float32))
        finally:
            self.train(was_training)


def _accuracy(model: DigitsClassifier, images: Tensor, labels: Tensor) -> float:
    with torch.no_grad():
        predicted = model(images).argmax(dim=1)
    return float((predicted == labels).double().mean())


def train_digits_classifier() -> DigitsClassifier:
    """Train the classifier on the digits training split, deterministically.

    Full-batch Adam for a fixed number of steps from weights initialised under
    a fixed seed, on one thread with deterministic algorithms switched on.
    The global random state, thread count and deterministic flag are restored
    afterwards. The weights are reproducible on one machine; other CPUs or
    torch versions may round differently.
    """
    from ..data import load

    dataset = load("digits")
    assert dataset.train is not None and dataset.train_labels is not None
    assert dataset.test_labels is not None

    # One thread fixes the order of float reductions, so the weights do not
    # depend on the core count. The network is small, so this costs little.
    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TRAINING_SEED)
            model = DigitsClassifier()
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        for _ in range(TRAINING_STEPS):
            optimizer.zero_grad()
            loss = loss_fn(model(dataset.train), dataset.train_labels)
            loss.backward()
            optimizer.step()
        model.eval()
        model.accuracy = _accuracy(model, dataset.test, dataset.test_labels)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
    logger.info("trained digits classifier: held-out accuracy %.4f", model.accuracy)
    return model


def _cache_root(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("OTBENCH_CACHE"):
        return Path(os.environ["OTBENCH_CACHE"]).expanduser()
    return Path.home() / ".cache" / "otbench"


def _load_cached(path: Path) -> DigitsClassifier | None:
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved["version"] != CLASSIFIER_VERSION:
            raise ValueError(f"version {saved['version']!r}, expected {CLASSIFIER_VERSION!r}")
        model = DigitsClassifier()
        model.load_state_dict(saved["state_dict"])
        model.accuracy = float(saved["accuracy"])
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as error:
        logger.warning("digits classifier cache %s is unreadable (%s); retraining", path, error)
        return None
    model.eval()
    return model


def _save(model: DigitsClassifier, path: Path) -> None:
    saved = {"version": CLASSIFIER_VERSION, "state_dict": model.state_dict(), "accuracy": model.accuracy}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write a temporary file and rename it, so a crash never leaves half a file.
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
            torch.save(saved, handle)
        os.replace(handle.name, path)
    except OSError as error:
        logger.warning("could not write digits classifier cache %s: %s", path, error)


@functools.cache
def _cached_classifier(path: Path) -> DigitsClassifier:
    model = _load_cached(path)
    if model is None:
        model = train_digits_classifier()
        _save(model, path)
    return model


def digits_classifier(cache_dir: str | Path | None = None) -> DigitsClassifier:
    """Return the trained digits classifier, training it on first use.

    The trained weights and accuracy are kept in memory for the process and on
    disk as ``digits-classifier-<version>.pt`` under ``cache_dir``, else
    ``$OTBENCH_CACHE``, else ``~/.cache/otbench``. An unreadable cache file
    is logged as a warning and replaced by a fresh training (about a second
    on one CPU core). The returned model is shared: do not train it further.

    Args:
        cache_dir: folder of the on-disk cache.
    """
    root = _cache_root(cache_dir)
    return _cached_classifier((root / f"digits-classifier-{CLASSIFIER_VERSION}.pt").resolve())
