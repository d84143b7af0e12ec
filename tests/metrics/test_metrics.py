"""Tests of the sample-quality metrics against known values."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from otbench import data
from otbench.metrics import (
    DigitsClassifier,
    digits_classifier,
    evaluate,
    frechet_distance,
    mode_quality,
    w2_heldout,
)
from otbench.metrics import classifier as classifier_module


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("otbench-cache")


@pytest.fixture(scope="session")
def trained(cache_dir: Path) -> DigitsClassifier:
    return digits_classifier(cache_dir)


def _square_modes() -> torch.Tensor:
    return torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


# ---- mode_quality -----------------------------------------------------------


def test_mode_quality_exact_centres() -> None:
    modes = _square_modes()
    result = mode_quality(modes.repeat(25, 1), modes, std=0.01)
    assert result["hq_fraction"] == 1.0
    assert result["modes_covered"] == 4.0
    assert result["n_modes"] == 4.0


def test_mode_quality_far_points() -> None:
    samples = torch.full((50, 2), 10.0)
    result = mode_quality(samples, _square_modes(), std=0.01)
    assert result["hq_fraction"] == 0.0
    assert result["modes_covered"] == 0.0


def test_mode_quality_half_the_modes() -> None:
    modes = data.load("8gaussians").modes
    assert modes is not None
    samples = modes[:4].repeat(10, 1)
    result = mode_quality(samples, modes, std=0.01)
    assert result["hq_fraction"] == 1.0
    assert result["modes_covered"] == 4.0
    assert result["n_modes"] == 8.0


def test_mode_quality_radius_is_n_sigma_std() -> None:
    modes = torch.zeros(1, 2)
    samples = torch.tensor([[0.29, 0.0], [0.31, 0.0]])
    result = mode_quality(samples, modes, std=0.1, n_sigma=3.0)
    assert result["hq_fraction"] == 0.5


def test_mode_quality_min_fraction_threshold() -> None:
    modes = _square_modes()
    # 97 samples on mode 0, 3 on mode 1: mode 1 has 3% of the samples.
    samples = torch.cat([modes[:1].repeat(97, 1), modes[1:2].repeat(3, 1)])
    assert mode_quality(samples, modes, std=0.01, min_fraction=0.03)["modes_covered"] == 2.0
    assert mode_quality(samples, modes, std=0.01, min_fraction=0.04)["modes_covered"] == 1.0


def test_mode_quality_data_set_samples() -> None:
    dataset = data.load("25gaussians")
    assert dataset.modes is not None and dataset.mode_std is not None
    result = mode_quality(dataset.test, dataset.modes, dataset.mode_std)
    # Within 3 std in 2-D: 1 - exp(-4.5), about 0.989.
    assert result["hq_fraction"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert result["modes_covered"] == 25.0


@pytest.mark.parametrize(
    ("samples", "modes", "kwargs", "message"),
    [
        (torch.zeros(0, 2), torch.zeros(3, 2), {}, "samples is empty"),
        (torch.zeros(5), torch.zeros(3, 2), {}, "samples has shape"),
        (torch.zeros(5, 3), torch.zeros(3, 2), {}, "samples have 3 features but modes have 2"),
        (torch.zeros(5, 2), torch.zeros(0, 2), {}, "modes is empty"),
        (torch.full((5, 2), float("nan")), torch.zeros(3, 2), {}, "NaN"),
        (torch.zeros(5, 2), torch.zeros(3, 2), {"std": 0.0}, "std=0.0"),
        (torch.zeros(5, 2), torch.zeros(3, 2), {"n_sigma": -1.0}, "n_sigma=-1.0"),
        (torch.zeros(5, 2), torch.zeros(3, 2), {"min_fraction": 0.0}, "min_fraction=0.0"),
        (torch.zeros(5, 2), torch.zeros(3, 2), {"min_fraction": 1.5}, "min_fraction=1.5"),
    ],
)
def test_mode_quality_bad_input_raises(samples, modes, kwargs, message) -> None:
    kwargs = {"std": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        mode_quality(samples, modes, **kwargs)


# ---- w2_heldout -------------------------------------------------------------


def test_w2_heldout_self_is_zero() -> None:
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    assert w2_heldout(x, x) == pytest.approx(0.0, abs=1e-7)


def test_w2_heldout_translation_is_shift() -> None:
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shift = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert w2_heldout(x + shift, x) == pytest.approx(5.0, abs=1e-9)


def test_w2_heldout_images_flattened() -> None:
    images = torch.zeros(10, 1, 2, 2)
    assert w2_heldout(images + 0.5, images) == pytest.approx(1.0, abs=1e-9)


def test_w2_heldout_subsamples_deterministically() -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(500, 2, generator=generator)
    y = torch.randn(400, 2, generator=generator)
    first = w2_heldout(x, y, max_n=100, seed=3)
    assert first == w2_heldout(x, y, max_n=100, seed=3)
    assert first != w2_heldout(x, y, max_n=100, seed=4)


def test_w2_heldout_unequal_sizes() -> None:
    # Two points at 0 against one at 1: every unit of mass moves distance 1.
    assert w2_heldout(torch.zeros(2, 1), torch.ones(1, 1)) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("samples", "reference", "kwargs", "message"),
    [
        (torch.zeros(0, 2), torch.zeros(3, 2), {}, "samples is empty"),
        (torch.zeros(4, 2), torch.zeros(0, 2), {}, "reference is empty"),
        (torch.zeros(4, 3), torch.zeros(3, 2), {}, "samples have 3 features"),
        (torch.zeros(4, 2), torch.zeros(3, 2), {"max_n": 0}, "max_n=0"),
        (torch.zeros(4, 2), torch.zeros(3, 2), {"seed": -1}, "seed=-1"),
    ],
)
def test_w2_heldout_bad_input_raises(samples, reference, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        w2_heldout(samples, reference, **kwargs)


# ---- frechet_distance -------------------------------------------------------


def test_frechet_one_d_closed_form() -> None:
    generator = torch.Generator().manual_seed(0)
    a = 1.0 + 2.0 * torch.randn(500, 1, generator=generator, dtype=torch.float64)
    b = -0.5 + 0.7 * torch.randn(400, 1, generator=generator, dtype=torch.float64)
    m_a, m_b = float(a.mean()), float(b.mean())
    s_a, s_b = float(a.std()), float(b.std())
    expected = (m_a - m_b) ** 2 + (s_a - s_b) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)


def test_frechet_commuting_covariances() -> None:
    # Points whose sample means are exact and whose sample covariances are diagonal.
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(300, 2, generator=generator, dtype=torch.float64)
    z = z - z.mean(0)
    whitening = torch.linalg.cholesky(torch.cov(z.T))
    z = z @ torch.linalg.inv(whitening).T
    a = z * torch.tensor([1.0, 3.0], dtype=torch.float64) + torch.tensor([1.0, 0.0], dtype=torch.float64)
    b = z * torch.tensor([2.0, 0.5], dtype=torch.float64)
    # Diagonal covariances commute, so the trace term is sum (sigma_a - sigma_b)^2.
    expected = 1.0 + (1.0 - 2.0) ** 2 + (3.0 - 0.5) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_identical_is_zero() -> None:
    x = torch.randn(100, 5, generator=torch.Generator().manual_seed(2))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-5)


def test_frechet_singular_covariance_is_finite() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(10, 30, generator=generator)
    b = torch.zeros(10, 30)
    b[:, 0] = torch.randn(10, generator=generator)
    value = frechet_distance(a, b)
    assert math.isfinite(value)
    assert value > 0


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (torch.zeros(1, 3), torch.zeros(4, 3), "features_a has 1 row"),
        (torch.zeros(4, 3), torch.zeros(4, 2), "features_a have 3 features"),
        (torch.zeros(0, 3), torch.zeros(4, 3), "features_a is empty"),
        (torch.zeros(4, 3), torch.full((4, 3), float("inf")), "features_b contains"),
    ],
)
def test_frechet_bad_input_raises(a, b, message) -> None:
    with pytest.raises(ValueError, match=message):
        frechet_distance(a, b)


# ---- digits classifier ------------------------------------------------------


def test_classifier_accuracy_above_0_9(trained: DigitsClassifier) -> None:
    assert trained.accuracy > 0.9


def test_classifier_features_shape(trained: DigitsClassifier) -> None:
    dataset = data.load("digits")
    features = trained.features(dataset.test[:7])
    assert features.shape == (7, 64)
    assert features.dtype == torch.float32
    assert not features.requires_grad


def test_classifier_features_accept_flat_input(trained: DigitsClassifier) -> None:
    images = data.load("digits").test[:5]
    assert torch.equal(trained.features(images), trained.features(images.reshape(5, 64)))


def test_classifier_features_bad_shape_raises(trained: DigitsClassifier) -> None:
    with pytest.raises(ValueError, match="expected 8x8 digits"):
        trained.features(torch.zeros(3, 2))


def test_classifier_cached_in_process(trained: DigitsClassifier, cache_dir: Path) -> None:
    assert digits_classifier(cache_dir) is trained


def test_classifier_reloads_from_disk(trained: DigitsClassifier, cache_dir: Path) -> None:
    loaded = classifier_module._load_cached(
        cache_dir / f"digits-classifier-{classifier_module.CLASSIFIER_VERSION}.pt"
    )
    assert loaded is not None
    assert loaded.accuracy == trained.accuracy
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


@pytest.mark.slow
def test_classifier_training_deterministic(tmp_path: Path) -> None:
    first = digits_classifier(tmp_path / "first")
    second = digits_classifier(tmp_path / "second")
    assert first is not second
    assert first.accuracy == second.accuracy
    for key, value in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], value)


def test_classifier_leaves_global_state(trained: DigitsClassifier) -> None:
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.slow
def test_classifier_corrupted_cache_retrains(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / f"digits-classifier-{classifier_module.CLASSIFIER_VERSION}.pt"
    path.write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING, logger="otbench.metrics.classifier"):
        model = digits_classifier(tmp_path)
    assert "unreadable" in caplog.text
    assert model.accuracy > 0.9
    assert classifier_module._load_cached(path) is not None


def test_classifier_cache_env_variable(
    trained: DigitsClassifier, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTBENCH_CACHE", str(cache_dir))
    assert digits_classifier() is trained


# ---- evaluate ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("8gaussians", {"w2_heldout", "hq_fraction", "modes_covered"}),
        ("25gaussians", {"w2_heldout", "hq_fraction", "modes_covered"}),
        ("swissroll", {"w2_heldout"}),
        ("digits", {"w2_heldout", "frechet_distance", "classifier_accuracy"}),
    ],
)
def test_evaluate_keys_per_data_set(
    name: str, keys: set[str], trained: DigitsClassifier, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTBENCH_CACHE", str(cache_dir))
    dataset = data.load(name)
    result = evaluate(dataset, dataset.sample(200, torch.Generator().manual_seed(0)))
    assert set(result) == keys
    assert all(isinstance(value, float) and math.isfinite(value) for value in result.values())


def test_evaluate_mixture_data_scores_high() -> None:
    dataset = data.load("8gaussians")
    result = evaluate(dataset, dataset.sample(500, torch.Generator().manual_seed(0)))
    assert result["modes_covered"] == 8.0
    assert result["hq_fraction"] > 0.95


def test_evaluate_digits_noise_worse_than_data(
    trained: DigitsClassifier, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTBENCH_CACHE", str(cache_dir))
    dataset = data.load("digits")
    real = evaluate(dataset, dataset.sample(360, torch.Generator().manual_seed(0)))
    noise = evaluate(dataset, torch.rand(360, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert noise["frechet_distance"] > 5 * real["frechet_distance"]
    assert noise["w2_heldout"] > real["w2_heldout"]
    assert real["classifier_accuracy"] == trained.accuracy


@pytest.mark.parametrize(
    ("name", "samples", "message"),
    [
        ("8gaussians", torch.zeros(5, 3), r"expected \(n, \*\(2,\)\)"),
        ("digits", torch.zeros(5, 64), r"expected \(n, \*\(1, 8, 8\)\)"),
        ("8gaussians", torch.zeros(0, 2), "samples is empty"),
        ("swissroll", torch.zeros(4, 2, dtype=torch.int64), "expected torch.float32 or torch.float64"),
    ],
)
def test_evaluate_bad_samples_raise(name: str, samples: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(data.load(name), samples)


def test_evaluate_bad_dataset_raises() -> None:
    with pytest.raises(ValueError, match="dataset='8gaussians'"):
        evaluate("8gaussians", torch.zeros(4, 2))  # type: ignore[arg-type]
