"""Data sets that ship inside packages (no download at run time)."""

from mgdm.data.fashion_mnist import (
    CLASS_NAMES,
    FASHION_MNIST_DIR,
    LabelledImages,
    load_fashion_mnist,
    read_idx,
)

__all__ = ["CLASS_NAMES", "FASHION_MNIST_DIR", "LabelledImages", "load_fashion_mnist", "read_idx"]
