"""A small Fashion-MNIST classifier whose penultimate features serve as the image-quality feature
space of the project (FID and the perceptual feature distance), since no Inception or VGG
weights can be fetched here.

Architecture (input ``[B, 1, 32, 32]`` in ``[-1, 1]``, background ``-1``):
three stages of ``conv3x3 -> GroupNorm -> SiLU -> conv3x3 -> GroupNorm -> SiLU -> avgpool 2``
with 32, 64 and 128 channels (32 -> 16 -> 8 -> 4 pixels), then ``flatten -> linear 2048 -> 128``
(the **features**, after SiLU) and ``linear 128 -> 10`` (the logits). About 0.55M parameters.

The shipped weights live in ``mgdm/assets/fashion-mnist-classifier/`` (``model.safetensors``
and a model card); ``mgdm train classifier`` rebuilds them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from mgdm.checkpoints import load_state_dict_checked, read_state_dict

SHIPPED_CLASSIFIER_DIR = (
    Path(__file__).resolve().parent.parent / "assets" / "fashion-mnist-classifier"
)
"""Folder of the shipped classifier: ``model.safetensors`` and ``MODEL_CARD.md``."""

FEATURE_DIM = 128
"""Width of the feature vector returned by :meth:`FashionClassifier.features`."""

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
"""Fashion-MNIST labels 0-9, as published."""


def _stage(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.GroupNorm(8, out_channels),
        nn.SiLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.GroupNorm(8, out_channels),
        nn.SiLU(),
        nn.AvgPool2d(2),
    )


class FashionClassifier(nn.Module):
    """``[B, 1, 32, 32]`` images in ``[-1, 1]`` -> ``[B, 10]`` logits (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(_stage(1, 32), _stage(32, 64), _stage(64, 128), nn.Flatten())
        self.embed = nn.Sequential(nn.Linear(128 * 4 * 4, FEATURE_DIM), nn.SiLU())
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, images: Tensor) -> Tensor:
        """Penultimate features ``[B, 128]`` of images ``[B, 1, 32, 32]`` in ``[-1, 1]``."""
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, 32, 32):
            raise ValueError(
                f"the Fashion-MNIST classifier takes images [B, 1, 32, 32]; got {list(images.shape)}."
            )
        return self.embed(self.body(images))

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))


def load_classifier(
    path: Path | str | None = None, device: torch.device | str = "cpu"
) -> FashionClassifier:
    """The classifier with weights from ``path`` (a ``.safetensors`` file or a folder holding
    ``model.safetensors``; default: the shipped one), in eval mode without gradients."""
    location = Path(path) if path is not None else SHIPPED_CLASSIFIER_DIR
    weights = location / "model.safetensors" if location.is_dir() else location
    if not weights.is_file():
        raise FileNotFoundError(
            f"no classifier weights at {weights}; train them with "
            "`mgdm train classifier --out DIR` or pass the path of a model.safetensors."
        )
    model = FashionClassifier()
    load_state_dict_checked(model, read_state_dict(weights), f"classifier weights {weights}")
    model.eval().requires_grad_(False)
    return model.to(device)


class ClassifierFeatures(nn.Module):
    """The classifier's features as a torchmetrics feature extractor.

    Takes ``[B, 1, 32, 32]`` images in ``[0, 1]`` (torchmetrics' ``normalize=True`` convention) and
    returns ``[B, 128]`` float64 features; ``num_features`` tells torchmetrics the width.
    """

    num_features = FEATURE_DIM

    def __init__(self, classifier: FashionClassifier | None = None):
        super().__init__()
        self.classifier = classifier if classifier is not None else load_classifier()

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.classifier.features(images.float() * 2.0 - 1.0).double()
