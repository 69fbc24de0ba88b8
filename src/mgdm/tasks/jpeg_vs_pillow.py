"""Our JPEG operator against Pillow's (libjpeg's) codec: the table of docs/tasks.md.

A fair comparison needs ``clamp_tables=True`` (libjpeg's rounded, clamped baseline tables, as
Pillow's ``quality=QF``) and ``rounding="hard"``; for 4:2:0 colour, ``chroma_upsampling="fancy"``
(libjpeg's decoder always upsamples chroma with its triangle filter), or 4:4:4 on both sides.
The score is the PSNR (peak 255) between the two decoded uint8 images of the same input.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from mgdm.operators.jpeg import JPEG
from mgdm.tasks.figures import synthetic_image

QUALITIES: tuple[int, ...] = (50, 75, 90, 95)

SETTINGS: dict[str, tuple[int, int | None, str]] = {
    "gray (luma path)": (1, None, "nearest"),
    "RGB 4:4:4": (3, 0, "nearest"),
    "RGB 4:2:0, fancy upsampling": (3, 2, "fancy"),
    "RGB 4:2:0, nearest (the task's decoder; unfair)": (3, 2, "nearest"),
}
"""Name -> (channels, Pillow ``subsampling`` (None = Pillow's default), our chroma upsampling)."""


def pillow_round_trip(pixels: np.ndarray, quality: int, subsampling: int | None) -> np.ndarray:
    """Encode uint8 ``pixels`` (``[H, W]`` or ``[H, W, 3]``) with Pillow at ``quality``, decode."""
    buffer = io.BytesIO()
    options = {} if subsampling is None else {"subsampling": subsampling}
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, **options)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


def ours_round_trip(
    pixels: np.ndarray, quality: int, chroma_subsampling: bool, upsampling: str
) -> np.ndarray:
    """Our JPEG (hard rounding, libjpeg tables) of uint8 ``pixels``, rounded to integer levels."""
    channels = 1 if pixels.ndim == 2 else 3
    x = torch.tensor(pixels, dtype=torch.float64).reshape(*pixels.shape[:2], channels)
    x = x.permute(2, 0, 1)[None] / 127.5 - 1
    operator = JPEG(
        tuple(x.shape[1:]),
        quality,
        rounding="hard",
        clamp_tables=True,
        chroma_subsampling=chroma_subsampling,
        chroma_upsampling=upsampling,
    )
    out = ((operator(x)[0] + 1) * 127.5).round().permute(1, 2, 0).numpy()
    return out[..., 0] if channels == 1 else out


def synthetic_pixels(channels: int, size: int) -> np.ndarray:
    """The docs' synthetic test image as uint8 ``[size, size]`` or ``[size, size, 3]``."""
    image = synthetic_image((channels, size, size))
    array = ((image + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return array[..., 0] if channels == 1 else array


def psnr_255(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8-valued arrays (peak 255)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def agreement(setting: str, quality: int, size: int) -> float:
    """PSNR between Pillow's and our decoded image for one setting of :data:`SETTINGS`."""
    channels, subsampling, upsampling = SETTINGS[setting]
    pixels = synthetic_pixels(channels, size)
    theirs = pillow_round_trip(pixels, quality, subsampling)
    return psnr_255(ours_round_trip(pixels, quality, subsampling != 0, upsampling), theirs)


def agreement_table(sizes: tuple[int, ...] = (64, 32)) -> str:
    """The Markdown table: one row per setting, one column per quality; each cell gives the PSNR
    at each image size (``64 / 32``)."""
    import PIL

    header = "| setting | " + " | ".join(f"QF {q}" for q in QUALITIES) + " |"
    lines = [
        f"PSNR (dB) between Pillow {PIL.__version__} and mgdm's JPEG, synthetic image at sizes "
        + " / ".join(f"{s}x{s}" for s in sizes),
        "",
        header,
        "|:---|" + "---:|" * len(QUALITIES),
    ]
    for setting in SETTINGS:
        cells = [
            " / ".join(f"{agreement(setting, q, size):.1f}" for size in sizes) for q in QUALITIES
        ]
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
