"""Per-image quality metrics against a reference, for images in ``[-1, 1]``.

* PSNR and SSIM: torchmetrics' implementations with ``data_range = 2`` (the width of
  ``[-1, 1]``), computed image by image so that a batch gives one value per image.
* Classifier feature distance: ``||f(x) - f(ref)||_2`` between the penultimate features of the
  project's Fashion-MNIST classifier (:mod:`mgdm.metrics.fashion_classifier`). It plays the role
  LPIPS plays in the paper (a learned perceptual distance), but it is **not** LPIPS: its features
  are those of a small classifier trained on 32 x 32 Fashion-MNIST only.
* Fréchet distance between two image sets in the same feature space (FID-style), via
  torchmetrics' ``FrechetInceptionDistance`` with the classifier as its feature extractor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdm.metrics.fashion_classifier import ClassifierFeatures, FashionClassifier, load_classifier

DATA_RANGE = 2.0
"""Width of the image range ``[-1, 1]``."""


def _check_pair(images: Tensor, reference: Tensor) -> Tensor:
    if images.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W]; got {list(images.shape)}.")
    reference = reference.to(images)
    if reference.dim() == 3 and reference.shape == images.shape[1:]:
        reference = reference.expand_as(images)
    if reference.shape != images.shape:
        raise ValueError(
            f"images {list(images.shape)} and reference {list(reference.shape)} differ in shape."
        )
    return reference


def psnr(images: Tensor, reference: Tensor) -> Tensor:
    """PSNR in dB of each image ``[B, C, H, W]`` against ``reference`` (``[C, H, W]`` or the same
    shape); returns ``[B]``. ``10 log10(2^2 / MSE)``."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    reference = _check_pair(images, reference)
    return torch.stack(
        [
            peak_signal_noise_ratio(x[None].double(), r[None].double(), data_range=DATA_RANGE)
            for x, r in zip(images, reference)
        ]
    ).to(images.dtype)


def ssim(images: Tensor, reference: Tensor) -> Tensor:
    """SSIM (Gaussian window 11, sigma 1.5) of each image against ``reference``; returns ``[B]``."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    reference = _check_pair(images, reference)
    values = structural_similarity_index_measure(
        images.double(), reference.double(), data_range=DATA_RANGE, reduction="none"
    )
    return values.reshape(-1).to(images.dtype)


def feature_distance(
    images: Tensor, reference: Tensor, classifier: FashionClassifier | None = None
) -> Tensor:
    """``||f(x) - f(ref)||_2`` with ``f`` the classifier's 128 features; returns ``[B]``.

    Only defined for ``[B, 1, 32, 32]`` images (the classifier's input)."""
    reference = _check_pair(images, reference)
    model = classifier if classifier is not None else load_classifier()
    with torch.no_grad():
        return (model.features(images.float()) - model.features(reference.float())).norm(dim=1)


def frechet_distance(
    images: Tensor,
    reference: Tensor,
    classifier: FashionClassifier | None = None,
    batch_size: int = 500,
) -> float:
    """Fréchet distance between the Gaussian fits of the classifier features of two image sets
    ``[N, 1, 32, 32]`` and ``[M, 1, 32, 32]`` in ``[-1, 1]`` (torchmetrics' FID with our features)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    for name, batch in (("images", images), ("reference", reference)):
        if batch.dim() != 4 or batch.shape[0] < 2:
            raise ValueError(f"{name} must be [N >= 2, 1, 32, 32]; got {list(batch.shape)}.")
    metric = FrechetInceptionDistance(feature=ClassifierFeatures(classifier), normalize=True)
    for batch, real in ((reference, True), (images, False)):
        for start in range(0, batch.shape[0], batch_size):
            chunk = batch[start : start + batch_size].float().clamp(-1, 1)
            metric.update((chunk + 1.0) / 2.0, real=real)
    return float(metric.compute())
