"""Image metrics, the Fashion-MNIST classifier, prior sampling and the model card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import linalg

from mgdm.data.fashion_mnist import load_fashion_mnist
from mgdm.evaluate.model_card import render_model_card
from mgdm.evaluate.prior import PriorEvaluation, sample_prior, write_sample_grid
from mgdm.metrics.fashion_classifier import (
    SHIPPED_CLASSIFIER_DIR,
    FashionClassifier,
    load_classifier,
)
from mgdm.metrics.image_quality import feature_distance, frechet_distance, psnr, ssim
from mgdm.priors.kernel_density import KernelDensityPrior

SHIPPED = (SHIPPED_CLASSIFIER_DIR / "model.safetensors").is_file()


def _random_classifier() -> FashionClassifier:
    torch.manual_seed(0)
    return FashionClassifier().eval().requires_grad_(False)


def _images(count: int, seed: int) -> torch.Tensor:
    return torch.rand(count, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_psnr_and_ssim_against_their_definitions():
    reference = _images(1, 0)[0]
    noisy = reference + 0.1 * torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    mse = ((noisy - reference) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(psnr(noisy, reference), 10 * torch.log10(4 / mse))
    assert torch.allclose(ssim(reference[None], reference), torch.ones(1))
    worse = reference + 0.5 * (noisy - reference)
    assert bool((ssim(worse, reference) > ssim(noisy, reference)).all())
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(noisy, torch.zeros(1, 16, 16))


def test_frechet_distance_matches_the_closed_form_on_features():
    classifier = _random_classifier()
    a, b = _images(300, 2), _images(200, 3) * 0.5
    ours = frechet_distance(a, b, classifier)
    fa = classifier.features(a).double().numpy()
    fb = classifier.features(b).double().numpy()
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    cov_a, cov_b = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)
    assert ours == pytest.approx(expected, rel=1e-3)
    assert frechet_distance(a, a, classifier) == pytest.approx(0.0, abs=1e-3)


def test_feature_distance_and_classifier_shapes():
    classifier = _random_classifier()
    x = _images(4, 4)
    assert classifier(x).shape == (4, 10)
    torch.testing.assert_close(feature_distance(x, x, classifier), torch.zeros(4))
    assert bool((feature_distance(x, _images(1, 5)[0], classifier) > 0).all())
    with pytest.raises(ValueError, match=r"\[B, 1, 32, 32\]"):
        classifier.features(torch.zeros(2, 3, 32, 32))


def test_missing_classifier_weights_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="mgdm train classifier"):
        load_classifier(tmp_path)


@pytest.mark.skipif(not SHIPPED, reason="the shipped classifier is not built")
def test_shipped_classifier_accuracy_matches_its_metrics():
    try:
        test = load_fashion_mnist("test", limit=2000)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST data not installed")
    model = load_classifier()
    accuracy = float((model(test.images).argmax(1) == test.labels).float().mean())
    reported = json.loads((SHIPPED_CLASSIFIER_DIR / "metrics.json").read_text())["test_accuracy"]
    assert accuracy > 0.85
    assert accuracy == pytest.approx(reported, abs=0.02)  # 2,000 of the 10,000 test images


def test_prior_samples_land_on_the_kernel_centres_and_ignore_the_batch():
    centres = _images(2, 6)
    prior = KernelDensityPrior(centres, 0.02)
    seeds = list(range(10, 16))
    samples = sample_prior(prior, seeds, num_steps=100, batch_size=4)
    nearest = torch.cdist(samples.flatten(1).double(), centres.flatten(1).double()).min(1).values
    # a draw of N(x_n, 0.02^2 I) in d = 1024 lies sqrt(1024) * 0.02 = 0.64 from its centre
    assert bool((nearest < 1.0).all()), nearest
    torch.testing.assert_close(sample_prior(prior, seeds[:3], num_steps=100), samples[:3])


def test_model_card_holds_the_measured_figures(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"channels": [8], "batch_size": 4, "lr": 2e-4, "seed": 0, "limit": None})
    )
    rows = "step,loss,seconds\n" + "".join(f"{s},{0.1 / s:.6g},{s * 2.0}\n" for s in range(1, 11))
    (tmp_path / "train_log.csv").write_text(rows)
    evaluation = PriorEvaluation(64, 50, 1.0, 12.345, 1.234, 0.5, 0.0078, 0.91, "cpu x", "2.13", 1)
    card = render_model_card(tmp_path, evaluation, "mgdm train prior --out X", "a laptop")
    assert "**10**" in card and "12.35" in card and "1.23" in card and "a laptop" in card
    assert f"**{sum(0.1 / s for s in range(1, 11)) / 10:.4f}**" in card
    path = write_sample_grid(_images(10, 7), tmp_path / "grid.png")
    assert path.is_file()


def test_latent_model_card_describes_the_autoencoder(tmp_path):
    run, autoencoder = tmp_path / "run", tmp_path / "autoencoder"
    run.mkdir()
    autoencoder.mkdir()
    (run / "config.json").write_text(
        json.dumps({"channels": [64], "batch_size": 4, "lr": 2e-4, "seed": 0, "limit": None})
    )
    (run / "train_log.csv").write_text("step,loss,seconds\n1,0.5,1.0\n2,0.3,2.0\n")
    (autoencoder / "config.json").write_text(
        json.dumps(
            {
                "channels": [8, 16],
                "latent_channels": 3,
                "kl_weight": 1e-4,
                "batch_size": 8,
                "lr": 5e-4,
                "seed": 1,
            }
        )
    )
    (autoencoder / "train_log.csv").write_text("step,loss,seconds\n1,0.2,3.0\n")
    (autoencoder / "metrics.json").write_text(
        json.dumps({"images": 100, "psnr_mean": 25.5, "psnr_std": 2.0})
    )
    evaluation = PriorEvaluation(64, 50, 1.0, 30.0, 1.0, 0.5, 0.01, 0.91, "cpu", "2.13", 1)
    card = render_model_card(run, evaluation, "cmd", "here", autoencoder)
    assert "latent DDPM" in card and "25.50 dB" in card and "3 channel(s) in and out" in card


def test_prior_samples_run_the_network_in_the_current_precision():
    """``mgdm evaluate --precision bf16`` reaches the network calls: they run under autocast,
    and the samples come back float32 on the CPU."""
    from mgdm.devices import use_precision

    seen: list[bool] = []

    class Recording(KernelDensityPrior):
        def denoise(self, x_t, t):
            seen.append(torch.is_autocast_enabled("cpu"))
            return super().denoise(x_t, t)

    prior = Recording(_images(2, 3), 0.02)
    with use_precision("bf16"):
        samples = sample_prior(prior, [1, 2], num_steps=5, device="cpu")
    assert seen and all(seen)
    assert samples.dtype == torch.float32 and samples.device.type == "cpu"
    seen.clear()
    sample_prior(prior, [1, 2], num_steps=5)
    assert seen and not any(seen)
