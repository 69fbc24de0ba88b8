"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (no download at run time).

The package installs the published idx files (``apt-get install dataset-fashion-mnist``)::

    /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz   60,000 images 28 x 28
    /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz
    /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz    10,000 images 28 x 28
    /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz

They are parsed here with ``gzip`` and numpy (no torchvision). Images are returned as float32
``[N, 1, 32, 32]`` in ``[-1, 1]`` (``x = pixel / 127.5 - 1``): each 28 x 28 image is padded by 2
pixels on every side with ``-1``, the value of Fashion-MNIST's black background (pixel 0), so the
padding looks like the background and a 32 x 32 UNet with three 2x downsamplings fits.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package puts the idx files."""

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""The ten Fashion-MNIST classes, by label."""

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_INSTALL_HINT = "install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; `make install` does it)"
_IDX_UBYTE = 0x08


@dataclass(frozen=True)
class LabelledImages:
    """Images with class labels.

    Attributes:
        images: float32 ``[N, C, H, W]`` in ``[-1, 1]``.
        labels: int64 ``[N]``.
        class_names: the name of each label.
    """

    images: Tensor
    labels: Tensor
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.numel())


def read_idx(path: Path | str, limit: int | None = None) -> np.ndarray:
    """Read a gzip-compressed idx file of unsigned bytes as a uint8 array ``[n, *dims]``.

    idx layout: two zero bytes, the type code (``0x08`` = unsigned byte), the number of
    dimensions ``k``, ``k`` big-endian int32 sizes, then the data in C order. With ``limit``
    only the first ``min(limit, n)`` items are decompressed.
    """
    with gzip.open(path, "rb") as stream:
        header = stream.read(4)
        if len(header) != 4 or header[:2] != b"\x00\x00" or header[2] != _IDX_UBYTE:
            raise ValueError(f"{path} is not an idx file of unsigned bytes (header {header!r}).")
        num_dims = header[3]
        dims = [int(v) for v in np.frombuffer(stream.read(4 * num_dims), dtype=">i4")]
        if len(dims) != num_dims or num_dims == 0:
            raise ValueError(f"{path}: truncated idx header.")
        count = dims[0] if limit is None else min(dims[0], limit)
        size = count * math.prod(dims[1:])
        data = stream.read(size)
    if len(data) != size:
        raise ValueError(
            f"{path}: expected {size} bytes of data, found {len(data)} (truncated file)."
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(count, *dims[1:])


def load_fashion_mnist(
    split: Literal["train", "test"] = "train",
    limit: int | None = None,
    indices: Sequence[int] | Tensor | None = None,
    root: Path | str | None = None,
) -> LabelledImages:
    """Fashion-MNIST as ``[N, 1, 32, 32]`` images in ``[-1, 1]`` (background -1) and labels ``[N]``.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000), as published.
        limit: keep the first ``limit`` images of the split (only those are decompressed).
        indices: keep these images of the split, in this order (applied after ``limit``).
        root: the folder of the idx ``.gz`` files; default :data:`FASHION_MNIST_DIR`.

    Raises:
        FileNotFoundError: the files are missing (the message says how to install them).
        ValueError: an unknown split, a bad ``limit`` or ``indices``, or malformed files.
    """
    if split not in _FILES:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; use 'train' or 'test'.")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive integer or None; got {limit}.")
    folder = Path(root) if root is not None else FASHION_MNIST_DIR
    paths = [folder / name for name in _FILES[split]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files not found: {', '.join(missing)}; {_INSTALL_HINT}."
        )
    pixels = read_idx(paths[0], limit)
    labels = read_idx(paths[1], limit)
    if pixels.ndim != 3 or labels.ndim != 1 or pixels.shape[0] != labels.shape[0]:
        raise ValueError(
            f"Fashion-MNIST {split}: images {pixels.shape} and labels {labels.shape} do not match."
        )
    images = torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0)[:, None]
    images = torch.nn.functional.pad(images, (2, 2, 2, 2), value=-1.0)
    label_tensor = torch.from_numpy(labels.astype(np.int64))
    if indices is not None:
        index = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= label_tensor.numel()):
            raise ValueError(
                f"indices must lie in 0…{label_tensor.numel() - 1} for this split/limit."
            )
        images, label_tensor = images[index], label_tensor[index]
    return LabelledImages(images.contiguous(), label_tensor, CLASS_NAMES)
