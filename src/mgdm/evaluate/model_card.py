"""The model card of a prior trained by ``mgdm train prior``, written from measured files only.

Every figure comes from a file: the run's ``config.json`` and ``train_log.csv`` (steps, loss,
training seconds) and the ``evaluation.json`` of ``mgdm evaluate prior`` (FID, sampling speed,
machine). Nothing is typed in by hand except the free-text description of the training hardware.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mgdm.evaluate.prior import PriorEvaluation

FINAL_LOSS_WINDOW = 500
"""The final loss is the mean of the last this-many logged steps (one step is a noisy estimate)."""


def training_summary(run_dir: Path) -> dict[str, float]:
    """``steps``, ``final_loss`` (mean of the last :data:`FINAL_LOSS_WINDOW` steps) and
    ``training_seconds`` (the log's cumulative seconds) of a training run."""
    with open(run_dir / "train_log.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{run_dir}/train_log.csv has no rows.")
    tail = rows[-FINAL_LOSS_WINDOW:]
    return {
        "steps": int(rows[-1]["step"]),
        "final_loss": sum(float(r["loss"]) for r in tail) / len(tail),
        "training_seconds": float(rows[-1]["seconds"]),
    }


def _autoencoder_section(autoencoder_run: Path) -> str:
    """The autoencoder of a latent prior: its options, training and test reconstruction PSNR."""
    config = json.loads((autoencoder_run / "config.json").read_text(encoding="utf-8"))
    metrics = json.loads((autoencoder_run / "metrics.json").read_text(encoding="utf-8"))
    summary = training_summary(autoencoder_run)
    return f"""
## Autoencoder
- diffusers `AutoencoderKL`, block channels {config["channels"]}, {config["latent_channels"]} latent
  channels (32 x 32 x 1 -> 8 x 8 x {config["latent_channels"]}), KL weight {config["kl_weight"]}
  per latent entry; Adam lr {config["lr"]}, batch {config["batch_size"]}, seed {config["seed"]}.
- Steps: **{summary["steps"]}**; final loss (mean of the last {FINAL_LOSS_WINDOW} steps):
  **{summary["final_loss"]:.4f}**; {summary["training_seconds"] / 3600:.2f} h of optimisation.
- **Test reconstruction PSNR: {metrics["psnr_mean"]:.2f} dB** (std {metrics["psnr_std"]:.2f}) on
  the {metrics["images"]} test images (`metrics.json` of `mgdm train autoencoder`).
"""


def render_model_card(
    run_dir: Path,
    evaluation: PriorEvaluation,
    command: str,
    training_hardware: str,
    autoencoder_run: Path | None = None,
) -> str:
    """The Markdown model card of the prior trained in ``run_dir`` (a latent prior when
    ``autoencoder_run``, the run folder of its autoencoder, is given)."""
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    summary = training_summary(run_dir)
    hours = summary["training_seconds"] / 3600
    latent = autoencoder_run is not None
    if latent:
        title = "Fashion-MNIST latent DDPM (mgdm's shipped latent prior)"
        what = (
            "An epsilon-prediction DDPM on the 4 x 8 x 8 latents (scaled by 1/std, as Stable\n"
            "Diffusion) of a KL autoencoder of 32 x 32 grey Fashion-MNIST images in [-1, 1],\n"
            'loaded by `mgdm.priors.load_prior("fashion-mnist-latent")`.'
        )
    else:
        title = "Fashion-MNIST DDPM (mgdm's shipped pixel prior)"
        what = (
            "An epsilon-prediction DDPM on 32 x 32 grey Fashion-MNIST images in [-1, 1] (the\n"
            "28 x 28 images padded with the background value -1), loaded by\n"
            '`mgdm.priors.load_prior("fashion-mnist")`.'
        )
    extra = _autoencoder_section(autoencoder_run) if latent else ""
    channels = (
        json.loads((autoencoder_run / "config.json").read_text(encoding="utf-8"))["latent_channels"]
        if latent
        else 1
    )
    return f"""# {title}

{what}

## Data
Fashion-MNIST training split (Debian `dataset-fashion-mnist`), {config["limit"] or 60000} images;
MIT licence (Zalando Research).

## Architecture and training
- diffusers `UNet2DModel`, block channels {config["channels"]}, self-attention at the lowest
  resolution; {channels} channel(s) in and out.
- DDPM linear schedule (betas 1e-4 … 0.02, 1000 steps), uniform integer times, MSE on epsilon.
- Adam, learning rate {config["lr"]}, batch {config["batch_size"]}, seed {config["seed"]}, no EMA.
- Steps: **{summary["steps"]}**; final loss (mean of the last {FINAL_LOSS_WINDOW} steps):
  **{summary["final_loss"]:.4f}**; training wall time: **{hours:.2f} h** of optimisation
  (`train_log.csv`, summed over resumed sessions).
- Hardware: {training_hardware}.
- Command (rerun it in the same folder to resume): `{command}`
{extra}
## Sample quality (measured by `mgdm evaluate prior`)
Fréchet distance between the Gaussian fits of the 128-d penultimate features of mgdm's own
Fashion-MNIST classifier (`mgdm/assets/fashion-mnist-classifier`, test accuracy
{evaluation.classifier_test_accuracy:.4f}); an FID in another feature space than Inception's, so its
values are comparable only with each other.

| set | vs the 10,000 test images |
|:---|---:|
| {evaluation.samples} prior samples (DDIM, {evaluation.ddim_steps} steps, eta {evaluation.eta}) | {
        evaluation.fid_prior_vs_test:.2f} |
| {evaluation.samples} training images (the floor) | {evaluation.fid_train_vs_test:.2f} |

Sampling: {evaluation.seconds_per_sample * 1000:.1f} ms per sample ({evaluation.ddim_steps} network
calls{", then the decoder" if latent else ""}, batches of 250) on {evaluation.machine}, torch {
        evaluation.torch_version
    },
{evaluation.threads} thread(s).

![samples](samples.png)

## Limits
A small model trained briefly on CPU: samples are recognisable garments with visible defects; the
FID gap to the floor says how far it is from the data. Grey 32 x 32 only.{
        " The autoencoder's reconstruction error bounds what any latent sampler can restore."
        if latent
        else ""
    }
"""
