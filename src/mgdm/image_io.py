"""Reading images and observations from files, converted to what a prior expects.

Pixels map linearly from ``{0, …, 255}`` to ``[-1, 1]`` (``x = p / 127.5 - 1``). Observations are
``.npy`` arrays (read with ``allow_pickle=False``) in the units of ``A(x)``, or, for tasks whose
observation is an image, an image file.

Limits: an image may have at most :data:`MAX_IMAGE_PIXELS` pixels (checked from its header,
before its pixels are decoded); an observation array must hold real numbers (integer or floating
point; not bool, complex, strings or objects) that are finite in float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mgdm.files import atomic_path
from mgdm.operators.inpainting import Inpainting
from mgdm.tasks.registry import Task

MAX_IMAGE_PIXELS = 8192 * 8192
"""The largest image read (64 megapixels): every prior here is far smaller, so a larger image
is only a cost (and a header claiming billions of pixels is a decompression bomb)."""


def _open(path: Path):  # -> PIL.Image.Image
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise ValueError(f"image file not found: {path}.")
    try:
        image = Image.open(path)  # reads the header only
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ValueError(
                f"{path} is {width}x{height} pixels; images of at most {MAX_IMAGE_PIXELS:,} pixels "
                "are read: shrink it first."
            )
        image.load()
    except Image.DecompressionBombError:
        raise ValueError(
            f"{path} claims more pixels than Pillow will decode; images of at most "
            f"{MAX_IMAGE_PIXELS:,} pixels are read."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path} is not a readable image (PNG, JPEG, …): {error}") from error
    return image


def _to_tensor(image) -> Tensor:  # image: PIL.Image.Image in mode "L" or "RGB"
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return torch.from_numpy(pixels / 127.5 - 1.0)


def read_image(path: Path | str, shape: tuple[int, int, int]) -> tuple[Tensor, list[str]]:
    """The image at ``path`` as ``[C, H, W]`` in ``[-1, 1]`` for ``shape = (C, H, W)``, with the
    notes on what was converted: colour to grey (luma, Pillow's ``L``) or grey to RGB, a centre
    crop to the target aspect ratio, a resize (Lanczos)."""
    from PIL import Image

    path = Path(path)
    channels, height, width = shape
    image = _open(path)
    notes: list[str] = []
    mode = "L" if channels == 1 else "RGB"
    if channels not in (1, 3):
        raise ValueError(f"images can be read for 1 or 3 channels; the prior has {channels}.")
    if image.mode != mode:
        if mode == "L" and image.mode not in ("1", "L", "I", "I;16", "F"):
            notes.append(f"converted {image.mode} colour to grey (the prior is grey)")
        elif mode == "RGB" and image.mode in ("1", "L", "LA", "I", "F"):
            notes.append("repeated the grey image on three channels (the prior is RGB)")
        image = image.convert(mode)
    src_w, src_h = image.size
    if src_w * height != src_h * width:
        side_w = min(src_w, round(src_h * width / height))
        side_h = min(src_h, round(src_w * height / width))
        left, top = (src_w - side_w) // 2, (src_h - side_h) // 2
        image = image.crop((left, top, left + side_w, top + side_h))
        notes.append(
            f"cropped {src_w}x{src_h} to the centre {side_w}x{side_h} (aspect {width}:{height})"
        )
    if image.size != (width, height):
        notes.append(f"resized {image.size[0]}x{image.size[1]} to {width}x{height}")
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return _to_tensor(image), notes


def read_observation(path: Path | str, task: Task) -> Tensor:
    """An observation for ``task`` from ``path``: ``[*task.observation_shape]``.

    * ``.npy``: the array itself, of exactly the observation's shape;
    * an image file: used as ``y`` when the observation is an image of that size; for an
      inpainting task, an image of the full size is read and its kept pixels taken (``y = A x``).
    """
    path = Path(path)
    expected = tuple(task.observation_shape)
    if path.suffix.lower() == ".npz":
        raise ValueError(
            f"{path} is an .npz archive; give the observation as one array saved with numpy.save "
            "(.npy), or as an image for image-valued tasks."
        )
    if path.suffix.lower() == ".npy":
        return _read_npy_observation(path, task)
    if isinstance(task.operator, Inpainting):
        image, notes = read_image(path, task.image_shape)
        if notes:
            raise ValueError(
                f"the masked image {path} must already be {list(task.image_shape)} "
                f"({'; '.join(notes)} would move the mask)."
            )
        return task.operator(image[None])[0]
    if len(expected) != 3:
        raise ValueError(
            f"task {task.name!r} observes a {list(expected)} array, not an image: pass a .npy file."
        )
    image, notes = read_image(path, expected)
    if notes:
        raise ValueError(
            f"the observation {path} must be {expected[2]}x{expected[1]} with {expected[0]} "
            f"channel(s) for task {task.name!r}; it needed: {'; '.join(notes)}."
        )
    return image


def _read_npy_observation(path: Path, task: Task) -> Tensor:
    """The array in the ``.npy`` file ``path`` as a float32 observation of ``task``."""
    expected = tuple(task.observation_shape)
    if not path.is_file():
        raise ValueError(f"observation file not found: {path}.")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"{path} is not a readable .npy array: {reason}") from error
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
        kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
        raise ValueError(
            f"{path} holds {kind} values; an observation holds real numbers (integer or float)."
        )
    if tuple(array.shape) != expected:
        raise ValueError(
            f"{path} holds an array of shape {list(array.shape)}; task {task.name!r} on "
            f"{list(task.image_shape)} images observes {list(expected)}."
        )
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(array, dtype=np.float32)
    if not np.isfinite(values).all():
        raise ValueError(
            f"{path} holds NaN, infinite or out-of-float32-range values; observations must be "
            "finite (in the units of A(x) for x in [-1, 1])."
        )
    return torch.from_numpy(values)


def save_observation(path: Path | str, observation: Tensor) -> Path:
    """Write ``observation`` as a float32 ``.npy`` file (readable by :func:`read_observation`)."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise ValueError(f"observations are saved as .npy; got {path}.")
    with atomic_path(path) as temporary:
        np.save(temporary, observation.detach().cpu().numpy().astype(np.float32))
    return path
