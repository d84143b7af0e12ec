"""Tests of the training data sets: shapes, scalings, determinism and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from otbench import data

NAMES = ["25gaussians", "8gaussians", "digits", "swissroll"]


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_available_lists_all() -> None:
    assert data.available() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_sample_shape_and_dtype(name: str) -> None:
    dataset = data.load(name)
    batch = dataset.sample(16, _generator())
    assert batch.shape == (16, *dataset.sample_shape)
    assert batch.dtype == torch.float32
    assert dataset.dim == math.prod(dataset.sample_shape)


@pytest.mark.parametrize("name", NAMES)
def test_sample_same_generator_state_same_batch(name: str) -> None:
    dataset = data.load(name)
    assert torch.equal(dataset.sample(32, _generator(5)), dataset.sample(32, _generator(5)))


@pytest.mark.parametrize("name", NAMES)
def test_sample_new_seed_new_batch(name: str) -> None:
    dataset = data.load(name)
    assert not torch.equal(dataset.sample(32, _generator(5)), dataset.sample(32, _generator(6)))


@pytest.mark.parametrize("name", NAMES)
def test_sample_advances_generator(name: str) -> None:
    dataset = data.load(name)
    generator = _generator(1)
    assert not torch.equal(dataset.sample(32, generator), dataset.sample(32, generator))


@pytest.mark.parametrize("name", NAMES)
def test_test_split_fixed_across_loads(name: str) -> None:
    torch.manual_seed(0)
    first = data.load(name).test
    torch.manual_seed(1)
    second = data.load(name).test
    assert torch.equal(first, second)
    assert first.dtype == torch.float32


@pytest.mark.parametrize("name", ["25gaussians", "8gaussians", "swissroll"])
def test_toy_test_split_size(name: str) -> None:
    dataset = data.load(name)
    assert dataset.test.shape == (2000, 2)
    assert dataset.train is None
    assert dataset.train_labels is None
    assert dataset.test_labels is None


def test_eight_gaussians_modes() -> None:
    dataset = data.load("8gaussians")
    assert dataset.modes is not None
    assert dataset.modes.shape == (8, 2)
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    expected = math.sqrt(2) * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    assert torch.allclose(dataset.modes.double(), expected, atol=1e-6)
    assert dataset.mode_std == pytest.approx(0.02 / math.sqrt(2))


def test_twenty_five_gaussians_modes() -> None:
    dataset = data.load("25gaussians")
    assert dataset.modes is not None
    assert dataset.modes.shape == (25, 2)
    scaled = dataset.modes.double() * 2 * math.sqrt(2)
    assert torch.allclose(scaled, scaled.round(), atol=1e-6)
    assert set(scaled.round().flatten().tolist()) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    assert len({tuple(row) for row in scaled.round().tolist()}) == 25
    assert dataset.mode_std == pytest.approx(0.05 / (2 * math.sqrt(2)))


@pytest.mark.parametrize("name", ["25gaussians", "8gaussians"])
def test_mixture_samples_near_modes(name: str) -> None:
    dataset = data.load(name)
    assert dataset.modes is not None and dataset.mode_std is not None
    batch = dataset.sample(5000, _generator())
    offsets = batch[:, None, :] - dataset.modes[None, :, :]
    nearest = offsets.norm(dim=2).min(dim=1).values
    # In 2-D, P(||noise|| > 5 std) = exp(-12.5), about 4e-6 per sample.
    assert float(nearest.max()) < 5 * dataset.mode_std
    # Each coordinate of the noise has standard deviation mode_std.
    nearest_index = offsets.norm(dim=2).argmin(dim=1)
    noise = batch - dataset.modes[nearest_index]
    assert float(noise.std()) == pytest.approx(dataset.mode_std, rel=0.05)


@pytest.mark.parametrize("name", ["25gaussians", "8gaussians"])
def test_mixture_uses_every_mode(name: str) -> None:
    dataset = data.load(name)
    assert dataset.modes is not None
    batch = dataset.sample(4000, _generator())
    nearest = torch.cdist(batch, dataset.modes).argmin(dim=1)
    counts = torch.bincount(nearest, minlength=len(dataset.modes)).double()
    expected = 4000 / len(dataset.modes)
    # Each count is binomial; 5 standard deviations bound every mode.
    assert float((counts - expected).abs().max()) < 5 * math.sqrt(expected)


def test_swissroll_scale() -> None:
    dataset = data.load("swissroll")
    assert dataset.modes is None
    assert dataset.mode_std is None
    batch = dataset.sample(5000, _generator())
    # Noise-free swiss-roll radii t lie in [1.5 pi, 4.5 pi]; divided by 7.5 that is about [0.63, 1.88].
    radii = batch.double().norm(dim=1)
    assert float(radii.max()) < 4.5 * math.pi / 7.5 + 0.2
    assert float(radii.min()) > 1.5 * math.pi / 7.5 - 0.2


def test_digits_split_sizes_and_range() -> None:
    dataset = data.load("digits")
    assert dataset.sample_shape == (1, 8, 8)
    assert dataset.dim == 64
    assert dataset.train is not None and dataset.train_labels is not None
    assert dataset.test_labels is not None
    assert dataset.train.shape == (1437, 1, 8, 8)
    assert dataset.test.shape == (360, 1, 8, 8)
    assert dataset.train_labels.shape == (1437,)
    assert dataset.test_labels.shape == (360,)
    assert float(dataset.train.min()) == -1.0
    assert float(dataset.train.max()) == 1.0
    assert dataset.modes is None


def test_digits_scaling_matches_sklearn() -> None:
    dataset = data.load("digits")
    assert dataset.train is not None
    raw = load_digits().data.astype(np.float32) / 8 - 1
    rows = {row.tobytes() for row in raw}
    for image in dataset.test[:20]:
        assert image.numpy().reshape(64).tobytes() in rows


def test_digits_split_is_stratified() -> None:
    dataset = data.load("digits")
    assert dataset.train is not None and dataset.train_labels is not None
    assert dataset.test_labels is not None
    test_counts = torch.bincount(dataset.test_labels, minlength=10)
    assert int(test_counts.min()) >= 35
    assert int(test_counts.max()) <= 37
    assert int(dataset.train_labels.shape[0] + dataset.test_labels.shape[0]) == 1797


def test_digits_sample_comes_from_train() -> None:
    dataset = data.load("digits")
    assert dataset.train is not None
    rows = {image.numpy().tobytes() for image in dataset.train}
    batch = dataset.sample(50, _generator())
    assert all(image.numpy().tobytes() in rows for image in batch)


def test_load_unknown_name_lists_available() -> None:
    with pytest.raises(ValueError, match="available: 25gaussians, 8gaussians, digits, swissroll"):
        data.load("mnist")


@pytest.mark.parametrize("n", [0, -3, 2.0, True])
def test_sample_bad_size_raises(n: object) -> None:
    with pytest.raises(ValueError, match="n="):
        data.load("8gaussians").sample(n, _generator())  # type: ignore[arg-type]


def test_sample_bad_generator_raises() -> None:
    with pytest.raises(ValueError, match="generator=0"):
        data.load("8gaussians").sample(4, 0)  # type: ignore[arg-type]
