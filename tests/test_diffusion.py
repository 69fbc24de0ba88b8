import math

import pytest
import torch

from mgdm.diffusion import (
    Schedule,
    bridge_coefficients,
    cosine,
    ddim_step,
    ddpm_linear,
    eps_to_x0,
    gmm_benchmark,
    score_to_x0,
    timestep_grid,
    v_to_eps,
    x0_to_eps,
    x0_to_score,
)
from mgdm.random import SampleNoise


def test_timestep_grids_match_the_reference():
    assert timestep_grid(20).tolist() == [
        0,
        52,
        105,
        157,
        210,
        262,
        315,
        368,
        420,
        473,
        525,
        578,
        630,
        683,
        736,
        788,
        841,
        893,
        946,
        999,
    ]
    grid = timestep_grid(100).tolist()
    assert grid[:12] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 111]
    assert grid[-3:] == [978, 988, 999]


def test_ddpm_linear_schedule_has_the_reference_offset():
    schedule = ddpm_linear()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    ddpm = torch.cumprod(1 - betas, 0)
    assert schedule.alpha_bar(0) == 1.0
    assert torch.allclose(schedule.alpha_bar(torch.tensor([1, 500, 1000])), ddpm[[0, 499, 999]])


def test_other_schedules_are_valid():
    for schedule in (gmm_benchmark(), cosine()):
        abar = schedule.abar
        assert abar[0] == 1 and bool((abar[1:] <= abar[:-1]).all()) and abar[-1] < 1e-3


def test_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="1001"):
        Schedule(torch.ones(10))
    bad = ddpm_linear().abar.clone()
    bad[5] = 1.0
    with pytest.raises(ValueError, match="non-increasing"):
        Schedule(bad)
    with pytest.raises(ValueError, match="times"):
        ddpm_linear().alpha_bar(1001)


def test_conversions_round_trip():
    x_t = torch.randn(4, 3, dtype=torch.float64)
    x0 = torch.randn(4, 3, dtype=torch.float64)
    abar = torch.tensor([0.9, 0.5, 0.1, 0.01], dtype=torch.float64)
    eps = x0_to_eps(x_t, x0, abar)
    assert torch.allclose(eps_to_x0(x_t, eps, abar), x0)
    assert torch.allclose(score_to_x0(x_t, x0_to_score(x_t, x0, abar), abar), x0)
    v = abar.sqrt()[:, None] * eps - (1 - abar).sqrt()[:, None] * x0
    assert torch.allclose(v_to_eps(x_t, v, abar), eps)


def _ratios(schedule, s, t, u):
    a = schedule.alpha_bar
    return (a(t) / a(s)).item(), (a(u) / a(t)).item(), (a(u) / a(s)).item()


@pytest.mark.parametrize("s,t,u", [(0, 10, 50), (0, 300, 301), (20, 400, 900), (5, 6, 999)])
def test_eta_one_bridge_is_the_exact_vp_bridge(s, t, u):
    schedule = ddpm_linear()
    a_ts, a_ut, a_us = _ratios(schedule, s, t, u)
    c = bridge_coefficients(schedule, s, t, u, 1.0)
    assert math.isclose(c.coef_late.item(), math.sqrt(a_ut) * (1 - a_ts) / (1 - a_us), rel_tol=1e-9)
    assert math.isclose(
        c.coef_early.item(), math.sqrt(a_ts) * (1 - a_ut) / (1 - a_us), rel_tol=1e-9
    )
    assert math.isclose(c.std.item() ** 2, (1 - a_ut) * (1 - a_ts) / (1 - a_us), rel_tol=1e-9)


def test_bridge_from_zero_is_the_ddpm_posterior():
    schedule = ddpm_linear()
    t, u = 499, 500
    beta = 1 - (schedule.alpha_bar(u) / schedule.alpha_bar(t)).item()
    abar_t, abar_u = schedule.alpha_bar(t).item(), schedule.alpha_bar(u).item()
    c = bridge_coefficients(schedule, 0, t, u, 1.0)
    # DDPM posterior q(x_{t} | x_0, x_{t+1}) (Ho et al., eq. 7)
    assert math.isclose(c.coef_early.item(), math.sqrt(abar_t) * beta / (1 - abar_u), rel_tol=1e-9)
    assert math.isclose(
        c.coef_late.item(), math.sqrt(1 - beta) * (1 - abar_t) / (1 - abar_u), rel_tol=1e-9
    )
    assert math.isclose(c.std.item() ** 2, (1 - abar_t) / (1 - abar_u) * beta, rel_tol=1e-9)


def test_degenerate_bridges_return_the_endpoints():
    schedule = ddpm_linear()
    c = bridge_coefficients(schedule, 0, 0, 0, 1.0)
    assert (c.coef_early.item(), c.coef_late.item(), c.std.item()) == (1.0, 0.0, 0.0)
    c = bridge_coefficients(schedule, 30, 30, 700, 1.0)
    assert (
        c.std.item() == 0.0 and c.coef_late.item() == 0.0 and math.isclose(c.coef_early.item(), 1.0)
    )
    c = bridge_coefficients(schedule, 30, 700, 700, 0.7)
    assert (
        c.std.item() == 0.0
        and math.isclose(c.coef_late.item(), 1.0)
        and abs(c.coef_early.item()) < 1e-12
    )
    assert bridge_coefficients(schedule, 0, 300, 600, 0.0).std.item() == 0.0
    with pytest.raises(ValueError, match="early <= query <= late"):
        bridge_coefficients(schedule, 10, 5, 20)


def test_composing_bridges_gives_the_direct_bridge():
    """x_ell ~ Q^1[0->u](ell | x0, xu), then x_t ~ Q^1[ell->u](t | x_ell, xu) has the law of
    Q^1[0->u](t | x0, xu) (moments in closed form)."""
    schedule = ddpm_linear()
    ell, t, u = 120, 400, 410
    first = bridge_coefficients(schedule, 0, ell, u)
    second = bridge_coefficients(schedule, ell, t, u)
    direct = bridge_coefficients(schedule, 0, t, u)
    coef_x0 = second.coef_early * first.coef_early
    coef_xu = second.coef_early * first.coef_late + second.coef_late
    variance = second.coef_early**2 * first.std**2 + second.std**2
    assert torch.allclose(coef_x0, direct.coef_early)
    assert torch.allclose(coef_xu, direct.coef_late)
    assert torch.allclose(variance, direct.std**2)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_family_keeps_the_forward_marginal(eta):
    """x_u ~ q(x_u | x0), then x_t ~ Q^eta[0->u](t | x0, x_u): x_t ~ q(x_t | x0) for every eta."""
    schedule = ddpm_linear()
    t, u = 300, 700
    noise = SampleNoise(range(20000))
    x0 = torch.full((20000, 1), 0.8, dtype=torch.float64)
    abar_t, abar_u = schedule.alpha_bar(t).item(), schedule.alpha_bar(u).item()
    x_u = math.sqrt(abar_u) * x0 + math.sqrt(1 - abar_u) * noise.randn(1, dtype=torch.float64)
    x_t = ddim_step(schedule, x_u, x0, u, t, noise.randn(1, dtype=torch.float64), eta)
    assert abs(x_t.mean().item() - math.sqrt(abar_t) * 0.8) < 0.02
    assert abs(x_t.var().item() - (1 - abar_t)) < 0.02


def test_ddim_step_to_zero_returns_the_denoised_estimate():
    schedule = ddpm_linear()
    x_t, x0 = torch.randn(3, 2), torch.randn(3, 2)
    assert torch.allclose(ddim_step(schedule, x_t, x0, 40, 0, torch.randn(3, 2), 1.0), x0)
