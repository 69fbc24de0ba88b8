"""DPS, PGDM, DDNM+ and DiffPIR (docs/algorithms/dps.md, pgdm.md, ddnm.md, diffpir.md): exact-posterior accuracy, per-sample seeding,
cost accounting, the update equations on a Gaussian prior, and input validation.

The exact-posterior checks run on a reduced grid (K = 200 instead of the Reference's 1000) with
400 samples, to stay fast on two CPU cores.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from mgdm.diffusion.bridge import ddim_step
from mgdm.diffusion.schedules import gmm_benchmark, timestep_grid
from mgdm.gmm_problem import GMMProblem, make_gmm_problem
from mgdm.metrics.sliced_wasserstein import sliced_wasserstein
from mgdm.operators.base import Operator
from mgdm.operators.dense import DenseOperator
from mgdm.operators.noise import GaussianNoise, NoiseModel
from mgdm.priors.gaussian_mixture import GaussianMixture
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers import ddnm, diffpir, dps, pgdm
from mgdm.samplers._common import task_config
from mgdm.samplers.base import Sampler
from mgdm.samplers.ddnm import DDNM, DDNMConfig
from mgdm.samplers.diffpir import DiffPIR, DiffPIRConfig, zeta_to_ddim_eta
from mgdm.samplers.dps import DPS, DPSConfig
from mgdm.samplers.pgdm import PGDM, PGDMConfig
from mgdm.samplers.registry import sampler_class
from mgdm.samplers.settings import TASK_NAMES

SAMPLERS: dict[str, type[Sampler]] = {"dps": DPS, "pgdm": PGDM, "ddnm": DDNM, "diffpir": DiffPIR}

GMM_STEPS = 200
GMM_SAMPLES = 400
GMM_SEED = 6
SW_BOUND: dict[str, float] = {"dps": 0.25, "pgdm": 0.25, "ddnm": 0.30, "diffpir": 0.45}
"""Sliced W1 to 400 exact posterior samples on ``make_gmm_problem(8, 2, seed=6)`` (sigma_y = 0.383),
K = 200, Reference defaults otherwise. Measured over the seed ranges ``o … o + 399`` with
o = 0, 10000, 20000, 30000, 40000 (floor: exact vs exact, 0.071-0.076; prior vs exact, 16.1):

* dps      0.123 0.116 0.132 0.124 0.128  (worst 0.132)
* pgdm     0.113 0.106 0.123 0.121 0.121  (worst 0.123)
* ddnm     0.142 0.144 0.161 0.157 0.154  (worst 0.161)
* diffpir  0.223 0.225 0.234 0.235 0.230  (worst 0.235)

Bounds are about 1.9x the worst measured value.
"""


class DenseWithoutSVD(DenseOperator):
    """A linear operator with an adjoint but no SVD (as blur or motion blur)."""

    @property
    def svd(self) -> None:
        return None


class Cubic(Operator):
    """A nonlinear operator ``x -> (M x)^3``."""

    def __init__(self, matrix: Tensor):
        self.matrix = matrix
        self.input_shape = (matrix.shape[1],)
        self.output_shape = (matrix.shape[0],)

    def forward(self, x: Tensor) -> Tensor:
        return (x @ self.matrix.T.to(x)) ** 3


class LaplaceNoise(NoiseModel):
    """A non-Gaussian noise model (only its type matters here)."""

    def log_likelihood(self, y: Tensor, prediction: Tensor) -> Tensor:
        return -(y - prediction).abs().reshape(prediction.shape[0], -1).sum(-1)

    def observe(self, clean: Tensor, noise: SampleNoise) -> Tensor:
        return clean


@pytest.fixture(scope="module")
def gmm() -> GMMProblem:
    return make_gmm_problem(8, 2, GMM_SEED)


@pytest.fixture(scope="module")
def exact_samples(gmm: GMMProblem) -> Tensor:
    return gmm.posterior.sample(SampleNoise(range(10**6, 10**6 + GMM_SAMPLES)))


# ---------------------------------------------------------------------------- exact posterior
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_gmm_exact_posterior(name: str, gmm: GMMProblem, exact_samples: Tensor) -> None:
    result = SAMPLERS[name](num_steps=GMM_STEPS).sample(gmm.prior, gmm.problem, range(GMM_SAMPLES))
    distance = sliced_wasserstein(result.samples, exact_samples)
    prior_distance = sliced_wasserstein(
        gmm.prior.sample(SampleNoise(range(3 * 10**6, 3 * 10**6 + GMM_SAMPLES))), exact_samples
    )
    assert prior_distance > 10.0
    assert distance < SW_BOUND[name], f"{name}: SW {distance:.3f} >= {SW_BOUND[name]}"
    assert distance < 0.05 * prior_distance


def test_diffpir_conjugate_gradient_matches_svd(gmm: GMMProblem) -> None:
    """Without an SVD, DiffPIR's CG proximal step gives the closed-form SVD step's samples."""
    no_svd = Problem(
        DenseWithoutSVD(gmm.problem.operator.matrix), gmm.problem.observation, gmm.problem.noise
    )
    sampler = DiffPIR(num_steps=50)
    exact = sampler.sample(gmm.prior, gmm.problem, range(20)).samples
    solved = sampler.sample(gmm.prior, no_svd, range(20)).samples
    torch.testing.assert_close(solved, exact, atol=2e-3, rtol=1e-4)


# ---------------------------------------------------------------------------- update equations
def _gaussian_setup(sigma_y: float) -> tuple[GaussianMixture, Problem, Tensor, Tensor]:
    """A standard normal prior in R^4 with the operator of ``make_gmm_problem(4, 2, 0)``;
    returns the prior, the problem, ``s`` and ``ȳ = U^T y``."""
    operator = make_gmm_problem(4, 2, 0).problem.operator
    prior = GaussianMixture(torch.zeros(1, 4), torch.ones(1), 1.0, gmm_benchmark())
    y = torch.tensor([1.5, -0.8])
    svd = operator.svd
    return (
        prior,
        Problem(operator, y, GaussianNoise(sigma_y)),
        svd.singular_values,
        svd.Ut(y[None].double())[0],
    )


def _spec_moments(
    method: str, s: float, y_bar: float, sigma_y: float, num_steps: int
) -> tuple[float, float]:
    """Mean and variance of one spectral coordinate of each method's output under the prior
    N(0, I) (where ``D_t(x) = sqrt(abar_t) x``), propagated through the equations of
    docs/algorithms/ddnm.md with scalar float64 algebra; ``s = 0`` is a null-space coordinate."""
    schedule = gmm_benchmark()
    grid = timestep_grid(num_steps).tolist()
    last = 0 if method == "ddnm" else 1
    mean, var = 0.0, 1.0  # x_T ~ p_T = N(0, 1)
    for j in range(num_steps - 1, last, -1):
        ab, ab_next = float(schedule.alpha_bar(grid[j])), float(schedule.alpha_bar(grid[j - 1]))
        root = math.sqrt(ab)
        a, sigma = math.sqrt(ab_next), math.sqrt(1 - ab_next)
        if method == "ddnm":
            eta = 0.85
            if s == 0:
                coefficient = a * root + sigma * math.sqrt(1 - eta**2) * math.sqrt(1 - ab)
                mean, var = coefficient * mean, coefficient**2 * var + (sigma * eta) ** 2
            elif sigma * s >= a * sigma_y:
                mean, var = a * y_bar / s, sigma**2 - (a * sigma_y / s) ** 2
            else:
                lam = s * sigma * math.sqrt(1 - eta**2) / (a * sigma_y)
                gain = a * (1 - lam) * root
                mean, var = gain * mean + a * lam * y_bar / s, gain**2 * var + (sigma * eta) ** 2
        elif method == "diffpir":  # zeta = 1: x' = sqrt(ab') x0^y + sqrt(1 - ab') xi
            rho = sigma_y**2 * ab / (1 - ab)
            gain, offset = rho * root / (rho + s * s), s * y_bar / (rho + s * s)
            mean, var = a * (gain * mean + offset), (a * gain) ** 2 * var + sigma**2
        else:  # pgdm: DDPM posterior coefficients, plus sqrt(ab' ab) d phi / d x_t
            ratio = ab / ab_next
            c_late = math.sqrt(ratio) * (1 - ab_next) / (1 - ab)
            c_early = a * (1 - ratio) / (1 - ab)
            std2 = (1 - ratio) * (1 - ab_next) / (1 - ab)
            weight = math.sqrt(ab_next * ab) * root * s / (s * s + sigma_y**2 / (1 - ab))
            gain = c_late + c_early * root - weight * s * root
            mean, var = gain * mean + weight * y_bar, gain**2 * var + std2
    if method == "pgdm":  # final Tweedie at T_1
        ab = float(schedule.alpha_bar(grid[1]))
        mean, var = math.sqrt(ab) * mean, ab * var
    return mean, var


@pytest.mark.parametrize("name", ["pgdm", "ddnm", "diffpir"])
@pytest.mark.parametrize("sigma_y", [0.3, 1.0])
def test_linear_methods_follow_their_equations(name: str, sigma_y: float) -> None:
    """On a Gaussian prior these samplers are linear-Gaussian recursions: the sample mean and
    variance of each spectral coordinate match the moments computed from the equations.

    sigma_y = 1 keeps the guidance from saturating (PGDM's moments then depend on its step
    weight); sigma_y = 0.3 makes the observed coordinates' noise terms dominate."""
    prior, problem, s, y_bar = _gaussian_setup(sigma_y)
    steps, count = 100, 4000
    samples = SAMPLERS[name](num_steps=steps).sample(prior, problem, range(count)).samples
    spectral = problem.operator.svd.Vt(samples.double())
    for i in range(4):
        s_i, y_i = (float(s[i]), float(y_bar[i])) if i < 2 else (0.0, 0.0)
        mean, var = _spec_moments(name, s_i, y_i, sigma_y, steps)
        assert abs(float(spectral[:, i].mean()) - mean) < 5 * math.sqrt(var / count) + 1e-3, (
            i,
            mean,
        )
        assert abs(float(spectral[:, i].var()) / var - 1) < 5 * math.sqrt(2 / count), (i, var)


def test_dps_step_matches_equation() -> None:
    """K = 3: one guided step 999 -> 499, then D_499, reproduced from the equation."""
    gmm = make_gmm_problem(4, 2, 1)
    gamma, seeds = 0.7, [11, 12]
    out = DPS(num_steps=3, gamma=gamma).sample(gmm.prior, gmm.problem, seeds).samples
    noise = SampleNoise(seeds)
    x = gmm.prior.initial_state(noise, 999).requires_grad_(True)
    t, t_next = torch.full((2,), 999), torch.full((2,), 499)
    x0 = gmm.prior.denoise(x, t)
    squared = ((gmm.problem.observation - gmm.problem.operator(x0)) ** 2).sum(-1)
    (grad,) = torch.autograd.grad(squared.sum(), x)
    step = ddim_step(gmm.prior.schedule, x.detach(), x0.detach(), 999, 499, noise.randn(4))
    x_next = step - gamma / squared.detach().sqrt()[:, None] * grad
    torch.testing.assert_close(out, gmm.prior.denoise(x_next, t_next), atol=1e-5, rtol=1e-5)


def test_diffpir_step_is_ddim_with_zeta_noise() -> None:
    """``DDIM_eta`` with ``zeta_to_ddim_eta`` equals ``sqrt(ab') x0 + sqrt(1-ab')(sqrt(1-zeta) eps
    + sqrt(zeta) xi)``."""
    schedule = gmm_benchmark()
    x_t, x0, xi = torch.randn(
        3, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    for t, t_next, zeta in [(999, 998, 1.0), (500, 450, 0.1), (40, 20, 0.0)]:
        ab, ab_next = schedule.alpha_bar(t), schedule.alpha_bar(t_next)
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        expected = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * (
            math.sqrt(1 - zeta) * eps + math.sqrt(zeta) * xi
        )
        eta = zeta_to_ddim_eta(schedule, t, t_next, zeta)
        torch.testing.assert_close(ddim_step(schedule, x_t, x0, t, t_next, xi, eta), expected)


# ---------------------------------------------------------------------------- shapes and seeding
@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("batch", [1, 7])
def test_shape_and_finite(name: str, batch: int, gmm: GMMProblem) -> None:
    samples = SAMPLERS[name](num_steps=20).sample(gmm.prior, gmm.problem, range(batch)).samples
    assert samples.shape == (batch, 8)
    assert bool(torch.isfinite(samples).all())


@pytest.mark.parametrize("name", [*SAMPLERS, "diffpir-cg"])
def test_sample_depends_only_on_its_seed(name: str, gmm: GMMProblem) -> None:
    problem = gmm.problem
    if name == "diffpir-cg":
        name = "diffpir"
        problem = Problem(
            DenseWithoutSVD(problem.operator.matrix), problem.observation, problem.noise
        )
    sampler = SAMPLERS[name](num_steps=50)
    alone = sampler.sample(gmm.prior, problem, [5]).samples
    among = sampler.sample(gmm.prior, problem, [3, 5, 9]).samples
    assert torch.allclose(alone[0], among[1], atol=1e-5)
    assert not torch.allclose(among[0], among[1])


# ---------------------------------------------------------------------------- cost accounting
@pytest.mark.parametrize(
    ("name", "forward", "backward"),
    [("dps", 1, 48), ("pgdm", 1, 48), ("ddnm", 49, 0), ("diffpir", 48, 0)],
)
def test_cost_counts(name: str, forward: int, backward: int, gmm: GMMProblem) -> None:
    sampler = SAMPLERS[name](num_steps=50)
    cost = sampler.sample(gmm.prior, gmm.problem, range(3)).cost
    assert (cost.nfe_forward, cost.nfe_backward) == (forward, backward)
    assert sampler.config.network_calls() == (forward, backward)


def test_reference_costs() -> None:
    """The full grid gives the counts of docs/algorithms/README.md §4."""
    assert DPSConfig().network_calls() == (1, 998)
    assert PGDMConfig().network_calls() == (1, 998)
    assert DDNMConfig().network_calls() == (999, 0)
    assert DiffPIRConfig().network_calls() == (998, 0)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_with_budget(name: str, gmm: GMMProblem) -> None:
    sampler = SAMPLERS[name](num_steps=1000).with_budget(30)
    cost = sampler.sample(gmm.prior, gmm.problem, range(2)).cost
    assert cost.nfe_total == 30
    assert sum(sampler.config.network_calls()) == 30
    assert sampler.config.num_steps == (32 if name == "diffpir" else 31)
    assert SAMPLERS[name]().with_budget(5000).config.num_steps == 1000
    with pytest.raises(ValueError, match="at least"):
        SAMPLERS[name]().with_budget(0)
    with pytest.raises(ValueError):
        SAMPLERS[name]().with_budget(float("nan"))


# ---------------------------------------------------------------------------- defaults and presets
def test_reference_defaults_and_task_presets() -> None:
    assert (DPSConfig().num_steps, DPSConfig().gamma) == (1000, 0.1)
    assert (PGDMConfig().num_steps, PGDMConfig().eta) == (1000, 1.0)
    assert (DDNMConfig().num_steps, DDNMConfig().eta) == (1000, 0.85)
    assert (DiffPIRConfig().lam, DiffPIRConfig().zeta) == (1.0, 1.0)
    for module in (dps, pgdm, ddnm, diffpir):
        assert tuple(module.TASK_DEFAULTS) == TASK_NAMES
    assert task_config(DPSConfig, dps.TASK_DEFAULTS, "sr4").gamma == 1.0
    assert task_config(DPSConfig, dps.TASK_DEFAULTS, "hdr", num_steps=100) == DPSConfig(100, 0.07)
    assert task_config(DiffPIRConfig, diffpir.TASK_DEFAULTS, "motion_blur").zeta == 0.1
    assert task_config(DDNMConfig, ddnm.TASK_DEFAULTS, "sr16") == DDNMConfig()
    with pytest.raises(ValueError, match="no preset"):
        task_config(DPSConfig, dps.TASK_DEFAULTS, "deblur")
    for name, cls in SAMPLERS.items():
        assert sampler_class(name) is cls


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", ["pgdm", "ddnm"])
def test_missing_svd_is_refused(name: str, gmm: GMMProblem) -> None:
    problem = Problem(
        DenseWithoutSVD(gmm.problem.operator.matrix), gmm.problem.observation, gmm.problem.noise
    )
    with pytest.raises(ValueError, match="DenseWithoutSVD has none.*dps"):
        SAMPLERS[name](num_steps=10).sample(gmm.prior, problem, [0])


@pytest.mark.parametrize("name", ["pgdm", "ddnm", "diffpir"])
def test_non_gaussian_noise_is_refused(name: str, gmm: GMMProblem) -> None:
    problem = Problem(gmm.problem.operator, gmm.problem.observation, LaplaceNoise())
    with pytest.raises(ValueError, match="Gaussian"):
        SAMPLERS[name](num_steps=10).sample(gmm.prior, problem, [0])


def test_nonlinear_operator_is_refused_by_svd_methods(gmm: GMMProblem) -> None:
    problem = Problem(
        Cubic(gmm.problem.operator.matrix), gmm.problem.observation, gmm.problem.noise
    )
    with pytest.raises(ValueError, match="Cubic is nonlinear"):
        DiffPIR(num_steps=10).sample(gmm.prior, problem, [0])
    for name in ("pgdm", "ddnm"):
        with pytest.raises(ValueError, match="Cubic has none"):
            SAMPLERS[name](num_steps=10).sample(gmm.prior, problem, [0])
    assert torch.isfinite(DPS(num_steps=10).sample(gmm.prior, problem, [0]).samples).all()


@pytest.mark.parametrize(
    ("config_class", "values"),
    [
        (DPSConfig, {"gamma": -0.1}),
        (DPSConfig, {"gamma": float("inf")}),
        (DPSConfig, {"num_steps": 2}),
        (DPSConfig, {"num_steps": 1001}),
        (DPSConfig, {"num_steps": 100.0}),
        (DPSConfig, {"num_steps": True}),
        (PGDMConfig, {"eta": 1.5}),
        (PGDMConfig, {"num_steps": 2}),
        (DDNMConfig, {"eta": -0.1}),
        (DDNMConfig, {"num_steps": 1}),
        (DiffPIRConfig, {"zeta": 1.2}),
        (DiffPIRConfig, {"lam": 0.0}),
        (DiffPIRConfig, {"lam": "1"}),
        (DiffPIRConfig, {"cg_iterations": 0}),
        (DiffPIRConfig, {"cg_tolerance": -1e-3}),
    ],
)
def test_invalid_config_values(config_class: type, values: dict) -> None:
    with pytest.raises(ValueError):
        config_class(**values)
