"""The do-nothing baseline against MGDM for the shipped prior: the table of docs/restore.md.

For each task (SR x4, box inpainting, Gaussian blur, JPEG QF 2) the first --images Fashion-MNIST
test images and one photo (matplotlib's ``grace_hopper.jpg``, read as ``mgdm restore`` reads an
image: grey, centre crop, resized to 32 x 32) are degraded with sigma_y = 0.05 (image ``k`` with
the observation seed ``k``) and restored by MGDM with its default settings (the ``default`` preset
and the task's defaults, as ``mgdm restore`` runs it), --samples samples each. Prints a Markdown
table: PSNR/SSIM of the do-nothing baseline (:func:`mgdm.restore.do_nothing_baseline`), of the
posterior mean and of single samples (means over images; for the photo, the one image)::

    .venv/bin/python scripts/restore_baseline_table.py --images 8 --samples 4
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from statistics import mean

import torch

from mgdm.data.fashion_mnist import load_fashion_mnist
from mgdm.image_io import convert_image
from mgdm.priors.catalog import load_prior
from mgdm.restore import restore_batch, simulate_observation
from mgdm.samplers.registry import build_sampler
from mgdm.tasks.registry import make_task

TASKS = ("sr4", "box_inpainting", "gaussian_blur", "jpeg")


def photo_path() -> Path:
    """matplotlib's sample photo (Grace Hopper, 512 x 600 RGB JPEG), shipped with matplotlib."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    prior = load_prior("fashion-mnist")
    sets = {
        f"Fashion-MNIST test 0-{args.images - 1}": load_fashion_mnist(
            "test", limit=args.images
        ).images,
        "photo (grace_hopper.jpg)": convert_image(photo_path(), (1, 32, 32)).image[None],
    }
    print(
        "| images | task | do nothing PSNR / SSIM | MGDM mean PSNR / SSIM | "
        "MGDM samples PSNR / SSIM | calls per sample | s per sample |"
    )
    print("|:--|:--|--:|--:|--:|--:|--:|")
    start = time.perf_counter()
    for label, cleans in sets.items():
        for name in TASKS:
            task = make_task(name, (1, 32, 32))
            observations = torch.stack(
                [simulate_observation(task, c, 0.05, seed=k) for k, c in enumerate(cleans)]
            )
            sampler = build_sampler("mgdm", task=name)
            results = restore_batch(
                observations, task, prior, sampler, args.samples, cleans=cleans, threads=1
            )
            base = (
                mean([r.baseline_psnr for r in results]),
                mean([r.baseline_ssim for r in results]),
            )
            post = (mean([r.psnr_mean for r in results]), mean([r.ssim_mean for r in results]))
            each = (
                float(torch.cat([r.psnr for r in results]).mean()),
                float(torch.cat([r.ssim for r in results]).mean()),
            )
            cost = results[0].cost
            print(
                f"| {label} | {name} | {base[0]:.2f} / {base[1]:.3f} | {post[0]:.2f} / {post[1]:.3f} "
                f"| {each[0]:.2f} / {each[1]:.3f} | {cost.nfe_forward:.0f} + {cost.nfe_backward:.0f} "
                f"| {cost.seconds_per_sample:.2f} |",
                flush=True,
            )
    print(
        f"\n{args.images} test images + 1 photo, {args.samples} samples each; "
        f"{time.perf_counter() - start:.0f} s on {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, 1 thread."
    )


if __name__ == "__main__":
    main()
