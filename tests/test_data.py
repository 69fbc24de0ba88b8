"""Fashion-MNIST from the Debian package: parsing, range, padding, splits, errors."""

import gzip
import struct

import numpy as np
import pytest
import torch

from mgdm.data import FASHION_MNIST_DIR, load_fashion_mnist, read_idx

installed = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(),
    reason="dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)


@installed
def test_test_split_shapes_range_padding_and_balance():
    data = load_fashion_mnist("test")
    assert data.images.shape == (10_000, 1, 32, 32) and data.images.dtype == torch.float32
    assert data.labels.shape == (10_000,) and data.labels.dtype == torch.int64
    assert data.images.min() == -1 and data.images.max() == 1
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (data.images[:, 0, border] == -1).all()  # padded with the background value
    assert torch.equal(data.labels.bincount(), torch.full((10,), 1000))  # published: 1000 per class


@installed
def test_train_limit_and_indices():
    data = load_fashion_mnist("train", limit=10)
    assert len(data) == 10
    # the first labels of the published training set
    assert data.labels.tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    subset = load_fashion_mnist("train", limit=10, indices=[6, 0])
    assert torch.equal(subset.images, data.images[[6, 0]]) and subset.labels.tolist() == [7, 9]
    assert data.class_names[9] == "Ankle boot"
    with pytest.raises(ValueError, match="indices"):
        load_fashion_mnist("train", limit=10, indices=[10])


def test_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation", root=tmp_path)


def _write_idx(path, array: np.ndarray, code: int = 0x08) -> None:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_parser_and_scaling(tmp_path):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([4, 1, 8]))
    assert np.array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz", limit=2), images[:2])
    data = load_fashion_mnist("test", root=tmp_path)
    assert torch.allclose(
        data.images[:, 0, 2:30, 2:30], torch.from_numpy(images / 127.5 - 1).float(), atol=1e-6
    )
    _write_idx(tmp_path / "bad.gz", images, code=0x0D)
    with pytest.raises(ValueError, match="unsigned bytes"):
        read_idx(tmp_path / "bad.gz")
