"""Train the Fashion-MNIST classifier whose features measure image quality (FID, feature distance).

Cross-entropy with Adam on the 60,000 training images, mini-batches drawn as the prior's trainer
draws them (:func:`mgdm.train.prior.batch_indices`: a seeded permutation per epoch), with a small
random translation (up to 2 pixels, filled with the background -1) as the only augmentation, so that
slightly shifted restorations keep their features. The test split is used once, at the end, for the
accuracy reported in ``metrics.json``. A few minutes on two CPU cores; not resumable (short). The
output folder is checked before the data are read and written only at the end, each file whole.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.data.fashion_mnist import load_fashion_mnist
from mgdm.files import check_output_dir, write_atomically
from mgdm.metrics.fashion_classifier import FashionClassifier
from mgdm.random import derive_seed, torch_generator
from mgdm.train.prior import batch_indices, check_batch_size

WEIGHTS_NAME = "model.safetensors"
METRICS_NAME = "metrics.json"
CARD_NAME = "MODEL_CARD.md"
_MAX_SHIFT = 2


def random_shift(images: Tensor, generator: torch.Generator) -> Tensor:
    """Translate each image of ``[B, 1, H, W]`` by up to ``_MAX_SHIFT`` pixels in each direction,
    filling with the background value -1."""
    padded = torch.nn.functional.pad(images, (_MAX_SHIFT,) * 4, value=-1.0)
    size = images.shape[-1]
    offsets = torch.randint(0, 2 * _MAX_SHIFT + 1, (images.shape[0], 2), generator=generator)
    return torch.stack(
        [p[:, i : i + size, j : j + size] for p, (i, j) in zip(padded, offsets.tolist())]
    )


@torch.no_grad()
def accuracy(model: FashionClassifier, images: Tensor, labels: Tensor, batch: int = 1000) -> float:
    """Fraction of ``images`` ``[N, 1, 32, 32]`` whose arg-max logit is ``labels`` ``[N]``."""
    model.eval()
    correct = sum(
        int((model(images[i : i + batch]).argmax(1) == labels[i : i + batch]).sum())
        for i in range(0, images.shape[0], batch)
    )
    return correct / images.shape[0]


def train_classifier(
    out: Path | str,
    steps: int = 2000,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, float]:
    """Train, evaluate on the test split, and write ``out/model.safetensors``,
    ``out/metrics.json`` and ``out/MODEL_CARD.md``; returns the metrics (``test_accuracy``,
    ``final_loss``, ``seconds``...). ``ValueError`` before the data are read for ``steps`` or
    ``batch_size`` < 1, an ``lr`` that is not a finite number > 0, or an ``out`` that is not a
    folder that exists or can be created; for a batch larger than the 60,000 training images."""
    if steps < 1 or batch_size < 1 or not (math.isfinite(lr) and lr > 0):
        raise ValueError(
            f"steps and batch size must be >= 1 and lr a finite number > 0; got {steps}, "
            f"{batch_size}, {lr}."
        )
    out = check_output_dir(out, "--out")
    train = load_fashion_mnist("train")
    check_batch_size(batch_size, train.images.shape[0])
    test = load_fashion_mnist("test")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FashionClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    model.train()
    started = time.perf_counter()
    running = None
    bar = tqdm(range(1, steps + 1), desc="train classifier", unit="step", disable=not progress)
    for step in bar:
        index = batch_indices(train.images.shape[0], batch_size, seed, step)
        generator = torch_generator(derive_seed(seed, 2, step))
        images = random_shift(train.images[index], generator)
        loss = torch.nn.functional.cross_entropy(model(images), train.labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        running = float(loss) if running is None else 0.98 * running + 0.02 * float(loss)
        bar.set_postfix(loss=f"{running:.4f}")
    seconds = time.perf_counter() - started
    metrics = {
        "test_accuracy": accuracy(model, test.images, test.labels),
        "final_loss": running,
        "seconds": seconds,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    write_atomically(out / WEIGHTS_NAME, lambda path: save_file(weights, str(path)))
    texts = {
        METRICS_NAME: json.dumps(metrics, indent=2) + "\n",
        CARD_NAME: render_classifier_card(metrics),
    }
    for name, text in texts.items():
        write_atomically(out / name, lambda path, text=text: path.write_text(text, "utf-8"))
    return metrics


def render_classifier_card(metrics: dict[str, float]) -> str:
    """The classifier's model card, every figure from ``metrics`` (``metrics.json``)."""
    return f"""# Fashion-MNIST classifier (mgdm's image-quality feature space)

The network of `mgdm.metrics.fashion_classifier` (three conv stages, 128-d penultimate features,
about 0.55M parameters). Its features define the FID of the model cards and the `feature_dist`
column of `mgdm bench images`. It is **not** Inception or LPIPS: values are comparable only with
each other.

- Data: Fashion-MNIST training split (60,000 images, 32 x 32 padded, [-1, 1]), translations of up
  to {_MAX_SHIFT} pixels as augmentation.
- Training: cross-entropy, Adam lr {metrics["lr"]} with cosine decay, batch {metrics["batch_size"]},
  {metrics["steps"]} steps, seed {metrics["seed"]}; final loss (smoothed) {metrics["final_loss"]:.4f};
  {metrics["seconds"]:.0f} s on the CPU ({metrics["threads"]} thread(s), torch {metrics["torch"]}).
- **Test accuracy: {metrics["test_accuracy"]:.4f}** on the 10,000 test images.
- Command: `mgdm train classifier --out DIR --steps {metrics["steps"]} --batch-size {metrics["batch_size"]} --lr {metrics["lr"]} --seed {metrics["seed"]}`
"""
