"""The differentiable JPEG against Pillow (libjpeg) and its own invariants.

A fair comparison with Pillow (libjpeg) needs:

* ``clamp_tables=True`` (libjpeg's rounded, clamped baseline tables: Pillow's ``quality=QF``) and
  ``rounding="hard"``;
* for 4:2:0 colour, ``chroma_upsampling="fancy"``: libjpeg's decoder upsamples the chroma with a
  triangle filter that Pillow does not let us turn off (our default, DiffJPEG's, repeats each
  chroma pixel); or colour with Pillow ``subsampling=0`` against ``chroma_subsampling=False``.

Remaining differences are libjpeg's integer colour transform, integer DCTs and upsampling
rounding, and the quantisation ties these flip. Measured on the 64 x 64 synthetic image at QF 50,
75, 90, 95: gray 50.6-53.8 dB, 4:4:4 37.2-44.6 dB, 4:2:0 with fancy upsampling 38.9-44.6 dB, 4:2:0
with nearest upsampling 27.6-28.1 dB (the upsampling filters differ: not a fair comparison).
"""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from mgdm.operators import JPEG, quantization_table
from mgdm.operators.jpeg import CHROMINANCE_TABLE, LUMINANCE_TABLE, dct_matrix, fancy_upsample
from mgdm.tasks.figures import synthetic_image
from mgdm.tasks.jpeg_vs_pillow import (
    QUALITIES,
    ours_round_trip,
    pillow_round_trip,
    psnr_255,
    synthetic_pixels,
)


@pytest.mark.parametrize(
    ("channels", "subsampling", "upsampling", "threshold"),
    [
        (1, None, "nearest", 45.0),
        (3, 0, "nearest", 35.0),
        (3, 2, "fancy", 35.0),
        (3, 2, "nearest", 25.0),
    ],
    ids=["gray", "rgb-444", "rgb-420-fancy", "rgb-420-nearest-unfair"],
)
def test_hard_rounding_matches_pillow(
    channels: int, subsampling: int | None, upsampling: str, threshold: float
) -> None:
    pixels = synthetic_pixels(channels, 64)
    for quality in QUALITIES:
        decoded = pillow_round_trip(pixels, quality, subsampling)
        ours = ours_round_trip(pixels, quality, subsampling != 0, upsampling)
        assert psnr_255(ours, decoded) >= threshold, (quality, psnr_255(ours, decoded))
        assert psnr_255(ours, decoded) > psnr_255(pixels, decoded)  # closer to libjpeg than to x


@pytest.mark.parametrize("quality", [1, 2, 10, 30, 50, 75, 95, 100])
def test_clamped_tables_are_pillows(quality: int) -> None:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_pixels(3, 16)).save(buffer, "JPEG", quality=quality)
    tables = Image.open(io.BytesIO(buffer.getvalue())).quantization  # natural (row-major) order
    luma = torch.tensor(tables[0], dtype=torch.float64).reshape(8, 8)
    chroma = torch.tensor(tables[1], dtype=torch.float64).reshape(8, 8)
    assert torch.equal(quantization_table(LUMINANCE_TABLE, quality, clamp_tables=True), luma)
    assert torch.equal(quantization_table(CHROMINANCE_TABLE, quality, clamp_tables=True), chroma)


def test_diffjpeg_tables_are_unclamped() -> None:
    table = quantization_table(LUMINANCE_TABLE, 2)
    torch.testing.assert_close(table, 25 * LUMINANCE_TABLE)  # f = 25 at QF 2, beyond 255
    assert float(table.max()) > 255
    torch.testing.assert_close(quantization_table(LUMINANCE_TABLE, 50), LUMINANCE_TABLE)
    torch.testing.assert_close(quantization_table(CHROMINANCE_TABLE, 90), 0.2 * CHROMINANCE_TABLE)


def test_fancy_upsampling_is_the_triangle_filter() -> None:
    plane = torch.arange(6.0, dtype=torch.float64).reshape(1, 2, 3)
    row = torch.tensor([0.0, 0.25, 0.75, 1.25, 1.75, 2.0], dtype=torch.float64)  # 1-D: 0, 1, 2
    expected = torch.stack([row, row + 0.75, row + 2.25, row + 3.0])  # rows 0, 3 blended 3:1
    torch.testing.assert_close(fancy_upsample(plane)[0], expected)


def test_dct_is_orthonormal() -> None:
    dct = dct_matrix(8)
    torch.testing.assert_close(dct @ dct.T, torch.eye(8, dtype=torch.float64))


def test_cubic_rounding_is_close_and_differentiable() -> None:
    x = (synthetic_image((3, 32, 32))[None].double() * 0.9).requires_grad_(True)
    cubic = JPEG((3, 32, 32), 2)
    hard = JPEG((3, 32, 32), 2, rounding="hard")
    y = cubic(x)
    # |r(v) - round(v)| <= 1/8 per coefficient: the surrogate stays near the hard codec
    assert float((y - hard(x)).detach().abs().mean()) < 0.05
    y.sum().backward()
    assert (
        x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0
    )


def test_near_lossless_at_quality_100() -> None:
    x = synthetic_image((1, 16, 16))[None].double()
    y = JPEG((1, 16, 16), 100, rounding="hard", clamp_tables=True)(x)
    assert float((y - x).abs().max()) < 2.5 / 127.5  # unit tables: at most ~2 grey levels


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_shape": (3, 16, 16), "quality": 0}, "1..100"),
        ({"image_shape": (3, 16, 16), "quality": 101}, "1..100"),
        ({"image_shape": (3, 16, 16), "quality": 2.5}, "1..100"),
        ({"image_shape": (2, 16, 16)}, "1 \\(gray\\) or 3 \\(RGB\\)"),
        ({"image_shape": (1, 12, 16)}, "multiples of 8"),
        ({"image_shape": (3, 8, 8)}, "multiples of 16"),
        ({"image_shape": (3, 16, 16), "rounding": "floor"}, "rounding"),
        ({"image_shape": (3, 16, 16), "chroma_upsampling": "bicubic"}, "chroma_upsampling"),
    ],
)
def test_bad_jpeg_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JPEG(**kwargs)


def test_colour_without_subsampling_accepts_multiples_of_8() -> None:
    op = JPEG((3, 8, 8), 75, chroma_subsampling=False)
    assert op(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 8, 8)
