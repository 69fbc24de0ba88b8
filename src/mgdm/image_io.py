"""Reading images and observations from files, converted to what a prior expects; listing the
images of a folder or glob; writing images and arrays.

Pixels map linearly from ``{0, …, 255}`` to ``[-1, 1]`` (``x = p / 127.5 - 1``; written back as
``round(127.5 (x + 1))``). Observations are
``.npy`` arrays (read with ``allow_pickle=False``) in the units of ``A(x)``, or, for tasks whose
observation is an image, an image file.

Limits: an image may have at most :data:`MAX_IMAGE_PIXELS` pixels (checked from its header,
before its pixels are decoded); an observation array must hold real numbers (integer or floating
point; not bool, complex, strings or objects) that are finite in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
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


IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
)
"""The file suffixes (lower case) a folder of images is listed by (:func:`list_images`)."""

GLOB_CHARACTERS = "*?["
"""An input that holds one of these and names no existing file is a glob pattern."""


@dataclass(frozen=True)
class ConvertedImage:
    """An image read for a prior and what was done to it.

    Attributes:
        image: ``[C, H, W]`` in ``[-1, 1]``.
        notes: one line per conversion (colour to grey or grey to RGB, crop, resize).
        colour_to_grey: whether a colour image was reduced to its luma.
        resize_factor: ``max(s, 1 / s)`` for the resize ratio ``s`` of the larger side change
            (1 without a resize): how far the pixel grid moved from the file's.
    """

    image: Tensor
    notes: tuple[str, ...]
    colour_to_grey: bool
    resize_factor: float


def convert_image(path: Path | str, shape: tuple[int, int, int]) -> ConvertedImage:
    """The image at ``path`` converted to ``shape = (C, H, W)`` in ``[-1, 1]``: colour to grey
    (luma, Pillow's ``L``) or grey to RGB, a centre crop to the target aspect ratio, a resize
    (Lanczos), with a note for each."""
    from PIL import Image

    path = Path(path)
    channels, height, width = shape
    image = _open(path)
    notes: list[str] = []
    mode = "L" if channels == 1 else "RGB"
    if channels not in (1, 3):
        raise ValueError(f"images can be read for 1 or 3 channels; the prior has {channels}.")
    colour_to_grey = False
    if image.mode != mode:
        if mode == "L" and image.mode not in ("1", "L", "I", "I;16", "F"):
            notes.append(f"converted {image.mode} colour to grey (the prior is grey)")
            colour_to_grey = _has_colour(image)
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
    ratio = 1.0
    if image.size != (width, height):
        ratio = max(image.size[0] / width, image.size[1] / height)
        notes.append(f"resized {image.size[0]}x{image.size[1]} to {width}x{height}")
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return ConvertedImage(_to_tensor(image), tuple(notes), colour_to_grey, max(ratio, 1 / ratio))


def _has_colour(image) -> bool:  # image: PIL.Image.Image
    """Whether an image in a colour mode holds colour: some pixel's channels differ (a grey
    picture saved as RGB loses nothing in the conversion to grey)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    return bool((np.abs(rgb - rgb[..., :1]) > 2).any())


def read_image(path: Path | str, shape: tuple[int, int, int]) -> tuple[Tensor, list[str]]:
    """The image at ``path`` as ``[C, H, W]`` in ``[-1, 1]`` for ``shape = (C, H, W)``, with the
    notes on what was converted (:func:`convert_image`)."""
    converted = convert_image(path, shape)
    return converted.image, list(converted.notes)


def list_images(spec: Path | str) -> list[Path]:
    """The image files ``spec`` names, sorted by path: a file; a folder (its files with an
    :data:`IMAGE_SUFFIXES` suffix, not its sub-folders); or a glob pattern (``photos/*.jpg``,
    ``**`` for sub-folders). ``ValueError`` when it names nothing (or a folder without images)."""
    import glob

    text = str(spec)
    path = Path(text)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(
            p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            raise ValueError(
                f"the folder {path} holds no image file ({', '.join(IMAGE_SUFFIXES)})."
            )
        return found
    if any(character in text for character in GLOB_CHARACTERS):
        found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not found:
            raise ValueError(f"the pattern {text!r} matches no file.")
        return found
    raise ValueError(f"image file or folder not found: {path}.")


def write_image(path: Path | str, image: Tensor) -> Path:
    """Write ``image`` ``[C, H, W]`` in ``[-1, 1]`` (``C`` = 1 or 3) as an 8-bit PNG, pixel
    ``round(127.5 (x + 1))`` clamped to ``0 … 255`` (the inverse of the reading map), atomically."""
    from PIL import Image

    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"an image to write is [1 or 3, H, W]; got {list(image.shape)}.")
    pixels = ((image.detach().cpu().float() + 1) * 127.5).round().clamp(0, 255).byte()
    array = pixels[0].numpy() if image.shape[0] == 1 else pixels.permute(1, 2, 0).numpy()
    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")
    return Path(path)


def save_array(path: Path | str, array: Tensor) -> Path:
    """Write ``array`` as a float32 ``.npy`` file, atomically."""
    with atomic_path(path) as temporary:
        np.save(temporary, array.detach().cpu().numpy().astype(np.float32))
    return Path(path)


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
    return save_array(path, observation)
