import pytest
import torch

from mgdm.random import SampleNoise, derive_seed


def test_stream_depends_only_on_its_seed():
    alone = SampleNoise([7]).randn(3, 4)
    batch = SampleNoise([1, 7, 9]).randn(3, 4)
    assert torch.equal(alone[0], batch[1])


def test_draws_advance_and_differ_between_seeds():
    noise = SampleNoise([1, 2])
    first, second = noise.randn(10), noise.randn(10)
    assert not torch.equal(first, second)
    assert not torch.equal(first[0], first[1])


def test_normal_and_uniform_statistics():
    noise = SampleNoise(range(4000))
    x = noise.randn(50).double()
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
    assert abs((x**4).mean() - 3) < 0.05  # Gaussian kurtosis
    u = noise.rand(20).double()
    assert 0 < u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.005


def test_randint_is_uniform_on_its_range():
    values = SampleNoise(range(30000)).randint(10, 14)
    counts = torch.bincount(values, minlength=14)[10:].double() / 30000
    assert values.min() >= 10 and values.max() <= 13
    assert torch.allclose(counts, torch.full((4,), 0.25, dtype=torch.float64), atol=0.01)


def test_subset_shares_the_streams():
    parent = SampleNoise([3, 4, 5])
    sub = parent.subset(torch.tensor([2]))
    assert torch.equal(sub.randn(5)[0], parent.randn(5)[2])


def test_derive_seed_is_deterministic_and_spread():
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)
    assert derive_seed(1, 2, 3) != derive_seed(1, 2, 4)
    assert 0 <= derive_seed(5) < 2**63


def test_skip_advances_the_streams_as_draws_would():
    drawn, skipped = SampleNoise([3, 5]), SampleNoise([3, 5])
    drawn.randn(2)
    drawn.rand(4)
    skipped.skip(2)
    assert torch.equal(drawn.randn(6), skipped.randn(6))
    with pytest.raises(ValueError, match="draws >= 0"):
        skipped.skip(-1)
