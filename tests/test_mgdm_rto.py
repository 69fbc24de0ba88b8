"""MGDM's randomize-then-optimise draw of ``x_ell | x_0, x_t`` (mgdm.samplers.mgdm_rto)."""

from dataclasses import replace

import pytest
import torch

from mgdm.gmm_problem import make_gmm_problem
from mgdm.operators import PoissonNoise
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers import MGDM, preset
from mgdm.samplers.mgdm_rto import rto_draw

SIGMA = 0.1


def _linear_case(singular_values: torch.Tensor, dim: int = 12, seed: int = 0):
    """A linear Gaussian problem ``y = A z + SIGMA eps`` with the given singular values, and a
    bridge prior ``N(mean, std^2 I)`` per sample (four samples, stds from 0.3 to 2). ``y`` is
    near ``A mean`` (a residual of 0.2 per entry), so that the minimisers lie within the trust
    radius ``std sqrt(dim)``."""
    generator = torch.Generator().manual_seed(seed)
    rows = singular_values.numel()
    u, _ = torch.linalg.qr(torch.randn(rows, rows, dtype=torch.float64, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(dim, rows, dtype=torch.float64, generator=generator))
    operator = u @ torch.diag(singular_values) @ v.T
    centre = torch.randn(dim, dtype=torch.float64, generator=generator)
    y = operator @ centre + 0.2 * torch.randn(rows, dtype=torch.float64, generator=generator)
    mean = centre.expand(4, dim)
    std = torch.tensor([0.5, 1.0, 2.0, 0.3], dtype=torch.float64)

    def residual(z, ell, eps):
        return (y - z @ operator.T) / SIGMA + eps, z

    return operator, y, mean, std, residual


def _exact_rto_minimisers(operator, y, mean, std, seeds):
    """The minimisers of the randomised objective for the draws ``rto_draw`` makes with
    ``seeds`` (the same streams, in the same order: ``xi`` then ``eps``)."""
    noise = SampleNoise(seeds, device="cpu")
    dim, rows = mean.shape[1], y.numel()
    xi = noise.randn(dim, dtype=torch.float64)
    eps = noise.randn(rows, dtype=torch.float64)
    z_0 = mean + std[:, None] * xi
    out = []
    for b in range(mean.shape[0]):
        precision = torch.eye(dim, dtype=torch.float64) / std[b] ** 2
        precision = precision + operator.T @ operator / SIGMA**2
        right = z_0[b] / std[b] ** 2 + operator.T @ (y + SIGMA * eps[b]) / SIGMA**2
        out.append(torch.linalg.solve(precision, right))
    return z_0, torch.stack(out)


def _relative_errors(steps, singular_values):
    operator, y, mean, std, residual = _linear_case(singular_values)
    seeds = [1, 2, 3, 4]
    drawn, _ = rto_draw(
        residual, (y.numel(),), mean, std, torch.zeros(4), steps, SampleNoise(seeds, device="cpu")
    )
    z_0, exact = _exact_rto_minimisers(operator, y, mean, std, seeds)
    return (drawn - exact).norm(dim=1) / (exact - z_0).norm(dim=1)


def test_one_step_is_the_exact_draw_when_the_operator_is_isotropic():
    """``A A^T = c I``: the first Gauss-Newton line step lands on the randomised minimiser (an
    exact posterior draw of the linear Gaussian problem), and the next steps stay there."""
    isotropic = torch.full((5,), 0.7, dtype=torch.float64)
    for steps in (1, 2, 5):
        assert float(_relative_errors(steps, isotropic).max()) < 1e-9


def test_steps_converge_to_the_draw_when_the_operator_is_ill_conditioned():
    """Singular values 0.2 to 3 (condition number 225 for ``A^T A``): the conjugate directions
    bring every draw at least 5 times closer to its minimiser in 20 steps than in one."""
    spread = torch.linspace(0.2, 3.0, 5, dtype=torch.float64)
    one, twenty = _relative_errors(1, spread), _relative_errors(20, spread)
    assert bool((twenty < 0.2 * one).all()), (one, twenty)
    assert float(_relative_errors(0, spread).min()) == 1.0  # no step: the bridge prior's draw


def test_the_last_step_correction_is_the_exact_line_search():
    """One step with ``denoise`` (the forward call made for ``x_0`` anyway evaluates the trial
    point): the draw is the exact minimiser of the randomised objective along the steepest
    descent from ``z_0``, ``z_0 - (g.g / g^T H g) g`` with ``H = I / s^2 + A^T A / sigma_y^2``
    (the Cauchy-Schwarz trial step overshoots it, so the correction is an interpolation), and the
    interpolated denoised output is the draw (an identity "denoiser")."""
    operator, y, mean, std, residual = _linear_case(
        torch.linspace(0.2, 3.0, 5, dtype=torch.float64)
    )
    seeds = [1, 2, 3, 4]
    trial, _ = rto_draw(residual, (y.numel(),), mean, std, torch.zeros(4), 1, SampleNoise(seeds))
    drawn, denoised = rto_draw(
        residual, (y.numel(),), mean, std, torch.zeros(4), 1, SampleNoise(seeds), denoise=True
    )
    z_0, _ = _exact_rto_minimisers(operator, y, mean, std, seeds)
    streams = SampleNoise(seeds)
    streams.randn(12, dtype=torch.float64)  # xi, then eps (the draw's order)
    eps = streams.randn(y.numel(), dtype=torch.float64)
    gradient = -((y + SIGMA * eps - z_0 @ operator.T) @ operator) / SIGMA**2  # [4, 12]
    curvature = (
        gradient.square().sum(1) / std**2 + (gradient @ operator.T).square().sum(1) / SIGMA**2
    )
    exact = z_0 - (gradient.square().sum(1) / curvature)[:, None] * gradient
    assert torch.allclose(drawn, exact, rtol=0, atol=1e-10)
    assert torch.allclose(denoised, drawn, rtol=0, atol=1e-12)
    assert not torch.allclose(trial, exact, rtol=0, atol=1e-3)  # the trial step alone is not


def test_draws_have_the_exact_posterior_moments():
    """Two of 20 coordinates observed: the mean and variance of 40,000 one-step draws against
    the closed-form posterior ``N(m + K (y - A m), (I - K A) s^2)`` (the trust radius
    ``s sqrt(20)`` binds for a fraction ``exp(-10)`` of the draws)."""
    dim, count, s = 20, 40_000, 0.4
    operator = torch.zeros(2, dim, dtype=torch.float64)
    operator[0, 0] = operator[1, 1] = 1.0
    y = torch.tensor([0.8, 0.7], dtype=torch.float64)
    centre = torch.zeros(dim, dtype=torch.float64)
    centre[:3] = torch.tensor([1.0, 0.5, -0.2], dtype=torch.float64)
    mean = centre.expand(count, dim)
    std = torch.full((count,), s, dtype=torch.float64)

    def residual(z, ell, eps):
        return (y - z @ operator.T) / SIGMA + eps, z

    draws, _ = rto_draw(residual, (2,), mean, std, torch.zeros(count), 1, SampleNoise(range(count)))
    gain = s**2 / (s**2 + SIGMA**2)
    exact_mean = centre.clone()
    exact_mean[:2] = centre[:2] + gain * (y - centre[:2])
    exact_var = torch.full((dim,), s**2, dtype=torch.float64)
    exact_var[:2] = s**2 * (1 - gain)
    standard_error = (exact_var / count).sqrt()
    assert bool(((draws.mean(0) - exact_mean).abs() < 5 * standard_error).all())
    # the variance of a variance estimate is 2 var^2 / n: 5 standard errors is 3.5 %
    assert torch.allclose(draws.var(0), exact_var, rtol=0.035)


def test_mgdm_with_the_rto_fit_costs_what_the_variational_fit_costs():
    case = make_gmm_problem(4, 2, 0)
    rto = replace(preset("default"), num_steps=20)
    assert rto.fit == "rto"  # the default's draw since 2026-12-05
    variational = replace(rto, fit="variational")
    result = MGDM(rto).sample(case.prior, case.problem, range(6))
    assert result.samples.shape == (6, 4) and bool(torch.isfinite(result.samples).all())
    reference = MGDM(variational).sample(case.prior, case.problem, range(6))
    assert result.cost.nfe_forward == reference.cost.nfe_forward == 1 + rto.outer_steps
    assert result.cost.nfe_backward == reference.cost.nfe_backward == rto.expected_vjp()
    corrected = MGDM(replace(rto, last_step_correction=True))
    changed = corrected.sample(case.prior, case.problem, range(6))
    assert (changed.cost.nfe_forward, changed.cost.nfe_backward) == (
        result.cost.nfe_forward,
        result.cost.nfe_backward,
    )
    assert bool(torch.isfinite(changed.samples).all())
    assert not torch.equal(changed.samples, result.samples)  # same streams, corrected draws


@pytest.mark.parametrize(
    "change", [{"fit": "variational"}, {"denoising_steps": 3}, {"denoiser_posterior": "exact"}]
)
def test_the_last_step_correction_needs_the_one_shot_rto_draw(change):
    with pytest.raises(ValueError, match="MGDM last_step_correction needs fit='rto'"):
        replace(preset("default"), last_step_correction=True, **change)


def test_the_rto_fit_refuses_other_potentials_and_non_gaussian_noise():
    case = make_gmm_problem(4, 2, 0)
    covariance = replace(preset("default"), fit="rto", likelihood="covariance-corrected")
    with pytest.raises(ValueError, match="fit='rto' needs likelihood='plain'"):
        MGDM(covariance).sample(case.prior, case.problem, range(2))
    poisson = Problem(case.problem.operator, case.problem.observation, PoissonNoise(100.0))
    with pytest.raises(TypeError, match="needs Gaussian noise"):
        MGDM(replace(preset("default"), fit="rto")).sample(case.prior, poisson, range(2))
