"""LPIPS on stand-in weights: random trunk and non-negative heads saved and loaded back."""

import pytest
import torch

from mgdm.metrics.lpips import LPIPS, TRUNK_CHANNELS, load_lpips, lpips


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = LPIPS()
    with torch.no_grad():
        for k in range(len(TRUNK_CHANNELS)):
            getattr(model, f"lin{k}").model[1].weight.abs_()  # LPIPS heads are >= 0
    path = tmp_path_factory.mktemp("lpips") / "alex.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, model.state_dict()


def test_keys_follow_torchvision_and_lpips_names(weights):
    _, state = weights
    assert "features.0.weight" in state and "features.10.bias" in state
    assert [tuple(state[f"lin{k}.model.1.weight"].shape) for k in range(5)] == [
        (1, c, 1, 1) for c in TRUNK_CHANNELS
    ]
    assert not any(k.startswith(("shift", "scale")) for k in state)  # constants, not weights


def test_distance_is_a_dissimilarity(weights):
    path, state = weights
    model = load_lpips(path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 32, 32, generator=generator) * 2 - 1
    y = torch.rand(3, 1, 32, 32, generator=generator) * 2 - 1
    assert torch.equal(lpips(x, x, model), torch.zeros(3))
    assert torch.allclose(lpips(x, y, model), lpips(y, x, model))
    assert bool((lpips(x, y, model) > 0).all())
    grey_as_rgb = lpips(x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1), model)
    assert torch.allclose(lpips(x, y, model), grey_as_rgb)
    assert torch.allclose(lpips(x, y[0], model)[0], lpips(x[:1], y[:1], model)[0])


def test_bad_weights_and_inputs_give_clear_errors(weights, tmp_path):
    path, state = weights
    renamed = {k.replace("lin0.", "head0."): v for k, v in state.items()}
    torch.save(renamed, tmp_path / "renamed.pt")
    with pytest.raises(ValueError, match=r"missing keys \[lin0.model.1.weight\].*head0"):
        load_lpips(tmp_path / "renamed.pt")
    model = load_lpips(path)
    with pytest.raises(ValueError, match="at least 31 x 31"):
        lpips(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16), model)
    with pytest.raises(ValueError, match="1 or 3"):
        lpips(torch.zeros(1, 2, 32, 32), torch.zeros(1, 2, 32, 32), model)
