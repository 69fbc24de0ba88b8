"""MGDM: mixture-guided diffusion with Gibbs sampling (Janati et al., ICML 2025).

Each intermediate posterior ``pi_t`` is approximated by a mixture over an earlier time ``ell``
of ``pi^ell_t(x_t) ∝ p_t(x_t) ∫ g(D_ell(x_ell)) p_{ell|t}(x_ell | x_t) dx_ell``, sampled by a
Gibbs sampler over ``(x_0, x_ell, x_t)`` (docs/algorithms/mgdm.md §1, §3-§6):

1. ``x_ell | x_0, x_t``: a diagonal Gaussian ``N(mu, diag(exp(2 rho)))`` fitted by ``G`` Adam
   steps on ``-log g(D_ell(z)) + CE(q || Q^1[0->t](x_ell | x_0, x_t)) - H(q)``, then sampled;
2. ``x_0 | x_ell``: an ``M``-point DDIM(eta) chain from ``ell`` to 0 (``M = 1``: Tweedie);
3. ``x_t | x_ell, x_u``: the exact bridge ``Q^1[ell->u]``.

The outer loop walks the grid backwards over triples ``(u, t, p) = (T_{j+1}, T_j, T_{j-1})``.
The ``reference`` preset reproduces the official implementation's behaviour; the further options
(docs/algorithms/mgdm.md §5, §6, §10) are fields of :class:`MGDMConfig` whose defaults in the
reference preset keep that behaviour.

Tensor shapes: a batch ``x`` is ``[B, *sample_shape]``; times and per-sample scalars are ``[B]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.diffusion.bridge import bridge_coefficients
from mgdm.diffusion.conversions import per_sample
from mgdm.diffusion.schedules import timestep_grid
from mgdm.likelihood import (
    LIKELIHOODS,
    check_covariance_correction,
    covariance_corrected_log_likelihood,
)
from mgdm.priors.base import Denoiser
from mgdm.priors.exact_guidance import ExactNoisyLikelihood, exact_guidance
from mgdm.problem import Problem
from mgdm.random import SampleNoise, content_seeds, derive_seed
from mgdm.samplers.base import CountingDenoiser, Sampler
from mgdm.samplers.mgdm_exact import LogPotential, draw_exact_conditional
from mgdm.samplers.mgdm_rto import WhitenedResidual, rto_draw
from mgdm.samplers.settings import Domain, SamplerConfig
from mgdm.samplers.step_schedule import IndexRange, StepSchedule

IndexRule = Literal["mix", "uniform", "deterministic", "mix-det", "zero", "midpoint"]
INDEX_RULES: tuple[str, ...] = ("mix", "uniform", "deterministic", "mix-det", "zero", "midpoint")
MGDM_LIKELIHOODS: tuple[str, ...] = (*LIKELIHOODS, "exact")
"""The potentials of the fit: :data:`mgdm.likelihood.LIKELIHOODS` and the ``exact`` oracle."""
FITS: tuple[str, ...] = ("variational", "rto", "exact")
"""How ``x_ell | x_0, x_t`` is drawn: the Gaussian fit, randomize-then-optimise with Gauss-Newton
line steps (:mod:`mgdm.samplers.mgdm_rto`), or the ``exact`` oracle."""
PRACTICAL_FITS: tuple[str, ...] = ("variational", "rto")
"""The draws of ``x_ell`` that need no exact prior (what the benchmarks offer as options)."""


def check_practical_fit(name: str) -> str:
    """``name`` if it is one of :data:`PRACTICAL_FITS`; else a one-line ``ValueError``."""
    if name not in PRACTICAL_FITS:
        raise ValueError(f"unknown MGDM fit {name!r}; accepted: {', '.join(PRACTICAL_FITS)}.")
    return name


REFERENCE_GRADIENT_STEPS = StepSchedule(3.0, (IndexRange(-10, None, 20.0),))
"""G(i) = 20 if i >= K - 10 else 3 (image base block)."""
REFERENCE_LEARNING_RATE = StepSchedule(0.03, (IndexRange(None, 11, 0.01),))
"""lr(i) = 0.01 if i <= 10 else 0.03 (image base block)."""
SMALL_BUDGET_GRADIENT_STEPS = StepSchedule.constant(2.0)
"""G(i) of :meth:`MGDM.with_budget` below half a configuration's own cost, and of the default."""
DEFAULT_GRID_POINTS = 172
"""K of the default preset: with two line steps per outer step, ``1 + 3 (K - 3) = 508`` calls
per sample, the cost of the ``variational`` preset (the default until 2026-12-05)."""

FAST_GRID_POINTS = 55
"""K of the ``fast`` preset: ``1 + 3 (K - 3) = 157`` calls per sample, the cost of the Adam
``fast`` preset it replaced on 2026-12-05 (158: K = 50, G = 2, 10 in the last 5)."""

GMM_GRID_POINTS = 87
"""K of the ``gmm`` preset: with R = 2 sweeps of two line steps, ``1 + 6 (K - 3) = 505`` calls per
sample, the K that :meth:`MGDM.with_budget` picks for the default's 508."""


@dataclass(frozen=True)
class MGDMConfig(SamplerConfig):
    """Hyperparameters of MGDM. Field defaults are the reference image configuration.

    Attributes:
        num_steps: K, points of the timestep grid ``int(linspace(0, 999, K))``; K - 3 outer steps.
        gibbs_sweeps: R, Gibbs sweeps per outer step.
        denoising_steps: M, points of the DDIM chain for ``x_0 | x_ell`` (1: one-shot Tweedie).
        eta: DDIM eta of the chain and of the per-step initialisation of ``x_t``.
        index_rule: how the mixture index ``ell`` is chosen (docs/algorithms/mgdm.md §4);
            ``midpoint`` (ours) is ``floor((min_index + p - 1) / 2)``, the centre of the uniform
            rule's range, for ``i < threshold``, then ``p``.
        threshold: outer iteration from which ``mix``/``mix-det``/``midpoint`` use ``ell = p``.
        min_index: smallest ``ell`` of the uniform draws.
        gradient_steps: G(i), steps of the fit per sweep (Adam steps of the variational fit, or
            line steps of the ``rto`` draw), one VJP each.
        learning_rate: lr(i) of Adam.
        lr_mode: ``absolute`` (reference: the step is lr in units of x) or ``bridge-std`` (the
            step is ``lr * s``, with ``s`` the std of the fit's bridge prior: scale-aware).
        kl: ``monte-carlo`` (reference: one-sample cross-entropy) or ``closed-form`` (exact
            Gaussian cross-entropy; only ``-log g`` stays Monte Carlo).
        mc_samples: S, reparameterised samples averaged per Adam step (S VJPs per step).
        per_sample_index: draw ``ell`` independently per sample (else one ``ell`` per step, shared
            by every sample of the same observation, drawn from a stream seeded by
            ``index_seed`` and a hash of that observation: it does not depend on the batch, and
            another problem gets another sequence).
        index_seed: mixed into the seed of the shared ``ell`` sequence.
        denoiser_posterior: ``ddim`` (reference chain) or ``exact`` (exact ``p_{0|ell}`` draws, for
            priors that offer them: isolates the chain's error).
        likelihood: the potential of the fit, ``plain`` (reference: ``g(D_ell(x))``),
            ``covariance-corrected`` (``N(y; A D_ell(x), sigma_y^2 I + (1 - abar_ell) A A^T)``, see
            :mod:`mgdm.likelihood`; needs an SVD and Gaussian noise) or ``exact`` (an oracle: the
            true ``g_ell`` in closed form, :mod:`mgdm.priors.exact_guidance`; Gaussian-mixture and
            kernel-density priors under a linear Gaussian problem with an SVD).
        fit: how ``x_ell | x_0, x_t`` is drawn: ``variational`` (the Gaussian fit), ``rto``
            (randomize-then-optimise: ``G`` Gauss-Newton line steps on a perturbed MAP problem,
            :mod:`mgdm.samplers.mgdm_rto`; plain potential, Gaussian noise; no learning rate) or
            ``exact`` (an oracle: importance resampling of the conditional itself with
            ``fit_particles`` proposals, :mod:`mgdm.samplers.mgdm_exact`; same priors as
            ``likelihood='exact'``).
        fit_particles: N, proposals per chain of the ``exact`` fit.
        last_step_correction: with ``fit = "rto"``, one-shot denoising (M = 1) and the ``ddim``
            chain: the forward call ``x_0 = D_ell(x_ell)`` also corrects the ``rto`` draw's last
            line step (:func:`mgdm.samplers.mgdm_rto.rto_draw` with ``denoise``), and ``x_0`` is
            interpolated to the corrected point. No extra call.
    """

    num_steps: int = 100
    gibbs_sweeps: int = 1
    denoising_steps: int = 20
    eta: float = 1.0
    index_rule: IndexRule = "mix"
    threshold: int = 70
    min_index: int = 10
    gradient_steps: StepSchedule = REFERENCE_GRADIENT_STEPS
    learning_rate: StepSchedule = REFERENCE_LEARNING_RATE
    lr_mode: Literal["absolute", "bridge-std"] = "absolute"
    kl: Literal["monte-carlo", "closed-form"] = "monte-carlo"
    mc_samples: int = 1
    per_sample_index: bool = False
    index_seed: int = 0
    denoiser_posterior: Literal["ddim", "exact"] = "ddim"
    likelihood: Literal["plain", "covariance-corrected", "exact"] = "plain"
    fit: Literal["variational", "rto", "exact"] = "variational"
    fit_particles: int = 64
    last_step_correction: bool = False
    clip_denoised: bool = False

    domain_presets: ClassVar[Mapping[Domain, str]] = {"audio": "audio", "gmm": "gmm"}
    """The preset a domain starts from: ``audio`` for audio, ``gmm`` for the Gaussian mixtures,
    ``default`` for images and latents."""

    def __post_init__(self) -> None:
        def fail(name: str, accepted: str) -> None:
            raise ValueError(
                f"MGDM {name} = {getattr(self, name)!r} is out of range; accepted: {accepted}."
            )

        if not isinstance(self.num_steps, int) or self.num_steps < 4:
            fail("num_steps", "an integer K >= 4 (K - 3 outer steps)")
        if self.num_steps > 1000:
            fail("num_steps", "K <= 1000")
        if not isinstance(self.gibbs_sweeps, int) or self.gibbs_sweeps < 1:
            fail("gibbs_sweeps", "an integer R >= 1")
        if not isinstance(self.denoising_steps, int) or self.denoising_steps < 1:
            fail("denoising_steps", "an integer M >= 1 (1 = one-shot Tweedie)")
        if not 0.0 <= float(self.eta) <= 1.0:
            fail("eta", "0 <= eta <= 1")
        if self.index_rule not in INDEX_RULES:
            fail("index_rule", ", ".join(INDEX_RULES))
        if not isinstance(self.threshold, int) or self.threshold < 0:
            fail("threshold", "an integer >= 0")
        if not isinstance(self.min_index, int) or self.min_index < 1:
            fail("min_index", "an integer >= 1")
        if self.lr_mode not in ("absolute", "bridge-std"):
            fail("lr_mode", "absolute, bridge-std")
        if self.kl not in ("monte-carlo", "closed-form"):
            fail("kl", "monte-carlo, closed-form")
        if not isinstance(self.mc_samples, int) or self.mc_samples < 1:
            fail("mc_samples", "an integer S >= 1")
        if self.denoiser_posterior not in ("ddim", "exact"):
            fail("denoiser_posterior", "ddim, exact")
        if self.likelihood not in MGDM_LIKELIHOODS:
            fail("likelihood", ", ".join(MGDM_LIKELIHOODS))
        if self.fit not in FITS:
            fail("fit", ", ".join(FITS))
        if not isinstance(self.fit_particles, int) or self.fit_particles < 1:
            fail("fit_particles", "an integer N >= 1")
        if self.last_step_correction and (
            self.fit != "rto" or self.denoising_steps != 1 or self.denoiser_posterior != "ddim"
        ):
            raise ValueError(
                "MGDM last_step_correction needs fit='rto', denoising_steps=1 and "
                f"denoiser_posterior='ddim'; got fit={self.fit!r}, denoising_steps="
                f"{self.denoising_steps}, denoiser_posterior={self.denoiser_posterior!r}."
            )
        for i in range(self.num_steps - 3):
            g = self.gradient_steps(i, self.num_steps)
            if g < 0 or g != int(g):
                raise ValueError(f"MGDM gradient_steps G({i}) = {g}; accepted: integers >= 0.")
            if not self.learning_rate(i, self.num_steps) > 0:
                raise ValueError(f"MGDM learning_rate lr({i}) must be > 0.")

    @property
    def outer_steps(self) -> int:
        return self.num_steps - 3

    def expected_vjp(self) -> int:
        """VJPs per sample: ``R * S * sum_i G(i)`` (docs/algorithms/mgdm.md §9)."""
        total = sum(int(self.gradient_steps(i, self.num_steps)) for i in range(self.outer_steps))
        return self.gibbs_sweeps * self.mc_samples * total

    @classmethod
    def named_presets(cls) -> Mapping[str, MGDMConfig]:
        """:data:`PRESETS`: reference, variational, default, dense-grid, fast, gmm and audio."""
        return PRESETS


PRESETS: dict[str, MGDMConfig] = {
    "reference": MGDMConfig(),
    "variational": MGDMConfig(
        index_rule="deterministic",
        lr_mode="bridge-std",
        learning_rate=StepSchedule.constant(1.0),
        denoising_steps=1,
        clip_denoised=True,
    ),
}
PRESETS["default"] = replace(
    PRESETS["variational"],
    fit="rto",
    num_steps=DEFAULT_GRID_POINTS,
    gradient_steps=SMALL_BUDGET_GRADIENT_STEPS,
)
PRESETS["dense-grid"] = replace(
    PRESETS["variational"],
    num_steps=300,
    gradient_steps=StepSchedule(1.0, (IndexRange(-10, None, 20.0),)),
)
PRESETS["fast"] = replace(PRESETS["default"], num_steps=FAST_GRID_POINTS)
PRESETS["gmm"] = replace(PRESETS["default"], gibbs_sweeps=2, num_steps=GMM_GRID_POINTS)
PRESETS["audio"] = MGDMConfig(
    num_steps=20,
    gibbs_sweeps=2,
    denoising_steps=15,
    eta=1.0,
    index_rule="mix",
    threshold=13,
    min_index=10,
    gradient_steps=REFERENCE_GRADIENT_STEPS,
    learning_rate=StepSchedule.constant(0.005),
    lr_mode="absolute",
)
"""Named configurations (:meth:`MGDMConfig.settings`'s ``preset``; :func:`preset`).

* ``reference``: the official implementation's image defaults (docs/algorithms/mgdm.md §8).
* ``default``: scale-aware and problem-independent, chosen by measurement (docs/benchmarks.md):
  ``x_ell`` drawn by randomize-then-optimise with two Gauss-Newton line steps per outer step
  (``fit = "rto"``, :mod:`mgdm.samplers.mgdm_rto`; no learning rate) on K = 172 grid points
  (508 calls per sample: 170 forward + 338 VJP, the cost of ``variational``), ``ell`` = the next
  grid time at every step, one-shot Tweedie denoising (M = 1), the ``x_0`` state clamped to the
  prior's data range (without it the one-shot Tweedie estimate of an image prior leaves
  ``[-1, 1]`` early and JPEG restorations collapse to black). The default since 2026-12-05.
* ``variational``: the default until 2026-12-05: the Gaussian variational fit with Adam steps
  proportional to the bridge std (``lr = 1.0 s``), K = 100, ``G(i) = 3`` (20 in the last 10):
  98 forward + 410 VJP per sample; the other options as ``default``.
* ``dense-grid``: ``variational`` with K = 300 grid points and one Adam step per outer step (20
  in the last 10): 728 calls per sample; better than ``variational`` at d = 80 and 800 on the
  benchmark, slightly worse at d = 8 (docs/benchmarks.md §1.4).
* ``fast``: ``default`` on K = 55 grid points: 53 forward + 104 forward+backward calls per
  sample, for quick restorations on a CPU; the demo's preset. Until 2026-12-05 it was
  ``variational`` with K = 50 and G = 2 (10 in the last 5), 158 calls; at equal calls the ``rto``
  draw has the lower feature distance summed over the ten pixel tasks (docs/benchmarks.md §2.2).
* ``gmm``: the ``gmm`` domain's preset (``mgdm bench gmm`` and every sampler built for that
  domain without a preset): ``default`` with R = 2 Gibbs sweeps on K = 87 grid points, 169
  forward + 336 VJP = 505 calls per sample (the default's 508 rescaled). On the Gaussian-mixture
  benchmark R = 2 was closer to the exact posterior than R = 1 at an equal 200, 500 and 1000
  calls (paired SW ratios 0.99, 0.96, 0.98 averaged over the six columns of d = 8 and 80;
  docs/benchmarks.md §1.9); on the image priors it was not (super-resolution x4 worse at 1000
  calls), so ``default`` keeps R = 1 there.
* ``audio``: the Reference's audio configuration (docs/algorithms/mgdm.md §8.2) with R = 2 Gibbs
  sweeps instead of 6, the ``audio`` domain's preset: K = 20 grid points (17 outer steps), M = 15
  chain points, ``mix`` rule with threshold 13 and ``min_index`` 10, ``G(i) = 20`` for
  ``i >= K - 10`` else 3, Adam with a constant absolute learning rate 0.005, eta 1: 340 VJPs and
  about 477 forward calls per window. R = 2 scored as R = 6 at a third of the calls
  (docs/benchmarks.md §3: 2.09 ± 0.43 against 2.03 ± 0.56 dB on the four-stem prior, 3.92 ± 0.86
  against 3.95 ± 0.77 on the independent priors). ``preset("audio", gibbs_sweeps=6)`` is the
  Reference's. Use it with ``sigma_y = 1e-4`` in the likelihood.
"""


def preset(name: str, **overrides: object) -> MGDMConfig:
    """The named configuration ``name`` of :data:`PRESETS`, then ``overrides``; ``ValueError``
    for an unknown name."""
    return MGDMConfig.settings("image", preset=name, **overrides)


@dataclass
class _State:
    """Mutable state of the Gibbs sampler for one batch."""

    x_t: Tensor
    x_0: Tensor
    noise: SampleNoise
    index_noise: SampleNoise | None = None


class MGDM(Sampler[MGDMConfig]):
    """The MGDM posterior sampler (see the module docstring)."""

    name: ClassVar[str] = "mgdm"
    config_class: ClassVar[type[SamplerConfig]] = MGDMConfig

    def check_compatible(self, prior, problem: Problem) -> None:
        if self.config.likelihood == "covariance-corrected":
            check_covariance_correction(problem)
        if self.config.fit == "rto":
            if self.config.likelihood != "plain":
                raise ValueError(
                    f"MGDM fit='rto' needs likelihood='plain'; got {self.config.likelihood!r}."
                )
            problem.sigma_y  # raises for non-Gaussian noise  # noqa: B018
        if self.config.likelihood == "exact" or self.config.fit == "exact":
            exact_guidance(prior, problem)  # raises for priors without exact guidance
        if self.config.denoiser_posterior == "exact" and not hasattr(
            prior, "sample_denoising_posterior"
        ):
            raise ValueError(
                f"denoiser_posterior='exact' needs a prior with exact p(x_0 | x_t) draws; "
                f"{type(prior).__name__} has none. Use denoiser_posterior='ddim'."
            )

    def with_budget(self, nfe: float) -> MGDM:
        """MGDM with the grid size K chosen so that the expected network calls per sample
        (forward + VJP, with chains of ``min(M, p + 1)`` points) are closest to ``nfe``.

        R, M and lr(i) are kept; the ``mix`` threshold is rescaled with the number of outer steps
        so that the same fraction of steps draws ``ell`` uniformly. G(i) is kept too, except for a
        budget below half the configuration's own cost: there G(i) becomes
        :data:`SMALL_BUDGET_GRADIENT_STEPS` (two fit steps at every outer step, no extra steps
        at the end), so that the calls go to grid points (docs/benchmarks.md §1.7: at 200 calls
        the ``variational`` preset's schedule spends 140 of them on its last 7 outer steps). The
        default preset has that G(i) already, so for it only K changes.
        """
        cfg = self.config
        if nfe < 0.5 * sum(network_calls(cfg, _upper_indices(cfg))):
            cfg = replace(cfg, gradient_steps=SMALL_BUDGET_GRADIENT_STEPS)

        def rescaled(k: int) -> MGDMConfig:
            threshold = round(cfg.threshold * (k - 3) / cfg.outer_steps)
            return replace(cfg, num_steps=k, threshold=threshold)

        def total(k: int) -> int:
            candidate = rescaled(k)
            return sum(network_calls(candidate, _upper_indices(candidate)))

        if nfe < total(4):
            raise ValueError(
                f"a budget of {nfe:g} calls is below MGDM's minimum of {total(4)} (K = 4)."
            )
        best = min(range(4, 1001), key=lambda k: abs(total(k) - nfe))
        return MGDM(rescaled(best))

    # ------------------------------------------------------------------ mixture index
    def draw_index(self, i: int, p: int, state: _State) -> Tensor:
        """The mixture index ``ell`` for outer step ``i`` with next grid time ``p``; int64 ``[B]``,
        on the CPU (known to the host without a device synchronisation) unless drawn per sample
        from the samples' own streams (``per_sample_index`` with a uniform rule)."""
        cfg = self.config
        batch = state.x_t.shape[0]
        device = torch.device("cpu")
        rule = cfg.index_rule
        early = i < cfg.threshold

        def uniform(low: int, high: int) -> Tensor:
            if high <= low:  # empty range (p <= min_index): fall back to the next grid time
                return torch.full((batch,), p, dtype=torch.int64, device=device)
            if cfg.per_sample_index:
                return state.noise.randint(low, high)
            assert state.index_noise is not None
            return state.index_noise.randint(low, high)

        if rule == "deterministic" or (rule in ("mix", "mix-det", "midpoint") and not early):
            return torch.full((batch,), p, dtype=torch.int64, device=device)
        if rule in ("mix", "uniform"):
            return uniform(cfg.min_index, p)
        if rule == "mix-det":
            return torch.full((batch,), max(1, int(0.75 * p)), dtype=torch.int64, device=device)
        if rule == "midpoint":
            middle = max(1, min(p, (cfg.min_index + p - 1) // 2))
            return torch.full((batch,), middle, dtype=torch.int64, device=device)
        # "zero": ell ~ U{1, …, max(1, floor(p / 5)) - 1}
        return uniform(1, max(1, p // 5)).clamp_min(1)

    def index_seeds(self, problem: Problem, batch: int) -> list[int]:
        """Seeds ``[B]`` of the shared ``ell`` streams: ``index_seed`` mixed with a hash of each
        sample's observation (one hash for an observation shared by the batch)."""
        observation = problem.observation
        if observation.dim() == len(problem.operator.output_shape):
            hashes = content_seeds(observation[None]) * batch
        else:
            hashes = content_seeds(observation)
        return [derive_seed(self.config.index_seed, h) for h in hashes]

    # ------------------------------------------------------------------ Gibbs conditionals
    def fit_and_sample(
        self,
        log_potential: LogPotential,
        mean: Tensor,
        std: Tensor,
        ell: Tensor,
        steps: int,
        lr: float,
        noise: SampleNoise,
    ) -> Tensor:
        """Variational Gaussian fit of ``x_ell | x_0, x_t`` and one draw from the fit.

        Args:
            log_potential: ``log G(z, ell)``, the potential of the fit (:meth:`log_potential`).
            mean, std: the bridge prior ``N(mean, std^2 I)`` (``mean`` ``[B, ...]``, ``std`` ``[B]``).
            ell: times ``[B]`` at which ``D_ell`` is evaluated.
            steps, lr: Adam steps and learning rate (a fresh Adam per call, as the reference).
        """
        cfg = self.config
        s = per_sample(std, mean)
        mu = mean.clone()
        rho = torch.log(s).expand_as(mean).clone()
        step_size = lr * s if cfg.lr_mode == "bridge-std" else torch.as_tensor(lr, dtype=mean.dtype)
        adam_mu, adam_rho = AdamState.zeros_like(mean), AdamState.zeros_like(mean)
        for _ in range(steps):
            grad_mu = torch.zeros_like(mean)
            grad_rho = torch.zeros_like(mean)
            for _ in range(cfg.mc_samples):
                xi = noise.randn(*mean.shape[1:], dtype=mean.dtype)
                z = (mu + torch.exp(rho) * xi).detach().requires_grad_(True)
                with torch.enable_grad():
                    (grad_log_g,) = torch.autograd.grad(log_potential(z, ell).sum(), z)
                g_mu, g_rho = variational_gradients(mu, rho, xi, -grad_log_g, mean, s, cfg.kl)
                grad_mu += g_mu
                grad_rho += g_rho
            mu = adam_mu.step(mu, grad_mu / cfg.mc_samples, step_size)
            rho = adam_rho.step(rho, grad_rho / cfg.mc_samples, step_size)
        return mu + torch.exp(rho) * noise.randn(*mean.shape[1:], dtype=mean.dtype)

    def log_potential(
        self,
        prior: Denoiser,
        problem: Problem,
        guidance: ExactNoisyLikelihood | None,
        likelihood: str,
    ) -> LogPotential:
        """``(z, ell) -> log G(z)`` ``[B]``, the potential ``likelihood`` (see the config): the
        ``plain`` and ``covariance-corrected`` ones evaluate ``D_ell(z)`` through ``prior``."""
        if likelihood == "exact":
            assert guidance is not None
            return guidance.log_likelihood

        def log_g(z: Tensor, ell: Tensor) -> Tensor:
            x0_hat = prior.denoise(z, ell)
            if likelihood == "plain":
                return problem.log_likelihood(x0_hat)
            extra_variance = 1.0 - prior.schedule.alpha_bar(ell)
            return covariance_corrected_log_likelihood(problem, x0_hat, extra_variance)

        return log_g

    def draw_x_ell(
        self,
        prior: CountingDenoiser,
        problem: Problem,
        guidance: ExactNoisyLikelihood | None,
        mean: Tensor,
        std: Tensor,
        ell: Tensor,
        steps: int,
        lr: float,
        noise: SampleNoise,
    ) -> Tensor:
        """Step 1 of the Gibbs sweep: ``x_ell | x_0, x_t`` by the Gaussian fit, or by the exact
        oracle (``fit='exact'``, whose particles are not counted as network calls)."""
        cfg = self.config
        if cfg.fit == "variational":
            log_potential = self.log_potential(prior, problem, guidance, cfg.likelihood)
            return self.fit_and_sample(log_potential, mean, std, ell, steps, lr, noise)
        if cfg.fit == "rto":
            residual = whitened_residual(prior, problem)
            output_shape = tuple(problem.operator.output_shape)
            return rto_draw(residual, output_shape, mean, std, ell, steps, noise)[0]
        assert guidance is not None
        uncounted = self.log_potential(prior.prior, problem, guidance, cfg.likelihood)
        plain = cfg.likelihood != "exact"
        return draw_exact_conditional(
            uncounted, guidance, plain, mean, std, ell, cfg.fit_particles, noise
        )

    def draw_and_denoise(
        self,
        prior: CountingDenoiser,
        problem: Problem,
        mean: Tensor,
        std: Tensor,
        ell: Tensor,
        steps: int,
        noise: SampleNoise,
    ) -> tuple[Tensor, Tensor]:
        """Steps 1 and 2 of the sweep with ``last_step_correction``: the ``rto`` draw of
        ``x_ell``, then ``x_0 = D_ell(x_ell)`` (one forward call, as the one-shot chain) whose
        evaluation also corrects the draw's last line step (:func:`rto_draw` with ``denoise``).
        Same calls and streams as :meth:`draw_x_ell` then :meth:`denoise_chain` with M = 1."""
        residual = whitened_residual(prior, problem)
        output_shape = tuple(problem.operator.output_shape)
        x_ell, x_0 = rto_draw(residual, output_shape, mean, std, ell, steps, noise, denoise=True)
        assert x_0 is not None
        noise.skip(1)  # the one-shot chain's advance (denoise_chain)
        return x_ell, x_0

    def denoise_chain(
        self,
        prior: CountingDenoiser,
        x_ell: Tensor,
        ell: Tensor,
        noise: SampleNoise,
        ell_host: Tensor | None = None,
    ) -> Tensor:
        """Draw ``x_0 | x_ell`` with an ``n = min(M, ell + 1)``-point DDIM(eta) chain ``ell -> 0``.

        Samples are grouped by chain length; every sample's draws use its own stream at the
        same counter values, whatever its group (the parent counter advances by ``M``). The
        groups and chain times are worked out on ``ell_host`` (``ell`` on the CPU, default
        ``ell``): with a CPU copy no step waits for the device, and a batch in one group (one
        ``ell`` for all, the shared index) runs without gather or scatter.
        """
        cfg = self.config
        if cfg.denoiser_posterior == "exact":
            return prior.sample_denoising_posterior(x_ell, ell, noise)
        if cfg.denoising_steps == 1:  # one-shot Tweedie for every sample: no grouping, no sync
            noise.skip(1)
            return prior.denoise(x_ell, ell)
        host = ell if ell_host is None else ell_host
        lengths = torch.clamp(host + 1, max=cfg.denoising_steps)
        x_0 = torch.empty_like(x_ell)
        for n in torch.unique(lengths).tolist():
            chosen = lengths == n
            whole = bool(chosen.all())
            index_host = torch.nonzero(chosen).reshape(-1)
            index = index_host.to(x_ell.device, non_blocking=True)
            x = x_ell if whole else x_ell[index]
            if n < 2:
                denoised = prior.denoise(x, ell if whole else ell[index])
                if whole:
                    x_0 = denoised
                else:
                    x_0[index] = denoised
                continue
            group_noise = noise.subset(index)
            times = _chain_times(host[index_host], n).to(x_ell.device, non_blocking=True)
            for j in range(n - 1):
                now, nxt = times[j], times[j + 1]
                x0_hat = prior.denoise(x, now)
                coefficients = bridge_coefficients(
                    prior.schedule, torch.zeros_like(nxt), nxt, now, cfg.eta
                )
                x = coefficients.sample(x0_hat, x, group_noise.randn(*x.shape[1:], dtype=x.dtype))
            if whole:
                x_0 = x
            else:
                x_0[index] = x
        noise.skip(cfg.denoising_steps)
        return x_0

    def clip(self, prior: CountingDenoiser, x_0: Tensor) -> Tensor:
        """``x_0`` clamped to the prior's data range when ``clip_denoised`` (else unchanged)."""
        if not self.config.clip_denoised or prior.data_range is None:
            return x_0
        return x_0.clamp(*prior.data_range)

    # ------------------------------------------------------------------ main loop
    def run(
        self, prior: CountingDenoiser, problem: Problem, noise: SampleNoise, progress: bool
    ) -> Tensor:
        cfg = self.config
        schedule = prior.schedule
        grid = timestep_grid(cfg.num_steps).tolist()
        batch = noise.batch_size
        device = noise.device
        x_t = prior.initial_state(noise, grid[-1]).to(device)
        x_0 = prior.denoise(x_t, torch.full((batch,), grid[-1], dtype=torch.int64, device=device))
        x_0 = self.clip(prior, x_0)
        state = _State(x_t=x_t, x_0=x_0, noise=noise)
        if not cfg.per_sample_index:
            state.index_noise = SampleNoise(self.index_seeds(problem, batch), device="cpu")
        guidance = None
        if cfg.likelihood == "exact" or cfg.fit == "exact":
            guidance = exact_guidance(prior.prior, problem)

        def full(value: int) -> Tensor:
            return torch.full((batch,), value, dtype=torch.int64, device=device)

        steps = range(cfg.outer_steps)
        for i in tqdm(steps, desc="MGDM", disable=not progress, leave=False):
            j = cfg.num_steps - 2 - i
            u, t, p = grid[j + 1], grid[j], grid[j - 1]
            ell_host = self.draw_index(i, p, state)
            ell = ell_host.to(device, non_blocking=True)
            x_u = state.x_t
            init = bridge_coefficients(schedule, full(0), full(t), full(u), cfg.eta)
            state.x_t = init.sample(state.x_0, x_u, noise.randn(*x_u.shape[1:], dtype=x_u.dtype))
            grad_steps = int(cfg.gradient_steps(i, cfg.num_steps))
            lr = float(cfg.learning_rate(i, cfg.num_steps))
            to_query = bridge_coefficients(schedule, full(0), ell, full(t), 1.0)
            renoise = bridge_coefficients(schedule, ell, full(t), full(u), 1.0)
            for _ in range(cfg.gibbs_sweeps):
                prior_mean = to_query.mean(state.x_0, state.x_t)
                if cfg.last_step_correction:
                    x_ell, x_0 = self.draw_and_denoise(
                        prior, problem, prior_mean, to_query.std, ell, grad_steps, noise
                    )
                else:
                    x_ell = self.draw_x_ell(
                        prior,
                        problem,
                        guidance,
                        prior_mean,
                        to_query.std,
                        ell,
                        grad_steps,
                        lr,
                        noise,
                    )
                    x_0 = self.denoise_chain(prior, x_ell, ell, noise, ell_host)
                state.x_0 = self.clip(prior, x_0)
                state.x_t = renoise.sample(x_ell, x_u, noise.randn(*x_u.shape[1:], dtype=x_u.dtype))
        return state.x_0


def whitened_residual(prior: Denoiser, problem: Problem) -> WhitenedResidual:
    """``(z, ell, eps) -> ((y - A(D_ell(z))) / sigma_y + eps, D_ell(z))``: ``[B, m]`` and
    ``[B, ...]`` (Gaussian noise)."""
    sigma_y = problem.sigma_y

    def residual(z: Tensor, ell: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        denoised = prior.denoise(z, ell)
        prediction = problem.operator(denoised)
        y = problem.observation_for(z.shape[0], prediction)
        return ((y - prediction) / sigma_y).reshape(z.shape[0], -1) + eps, denoised

    return residual


def variational_gradients(
    mu: Tensor,
    rho: Tensor,
    xi: Tensor,
    potential_grad: Tensor,
    prior_mean: Tensor,
    prior_std: Tensor,
    kl: str,
) -> tuple[Tensor, Tensor]:
    """Gradients in ``(mu, rho)`` of the one-sample variational loss of MGDM's fit.

    With ``z = mu + exp(rho) * xi`` and ``potential_grad = grad_z [-log g(D_ell(z))]``:

    * ``monte-carlo`` (reference): ``L = -log g(D(z)) + ||z - m||^2 / (2 s^2) - sum(rho)``, so
      ``dL/dmu = v`` and ``dL/drho = v * exp(rho) * xi - 1`` with ``v = potential_grad + (z - m)/s^2``;
    * ``closed-form``: the cross-entropy is replaced by its expectation
      ``(||mu - m||^2 + sum exp(2 rho)) / (2 s^2)``, so ``dL/dmu = potential_grad + (mu - m)/s^2``
      and ``dL/drho = potential_grad * exp(rho) * xi + exp(2 rho)/s^2 - 1``.

    Shapes: all ``[B, ...]`` except ``prior_std`` broadcastable (``[B, 1, …]``).
    """
    scale = torch.exp(rho)
    if kl == "monte-carlo":
        z = mu + scale * xi
        total = potential_grad + (z - prior_mean) / prior_std**2
        return total, total * scale * xi - 1.0
    return (
        potential_grad + (mu - prior_mean) / prior_std**2,
        potential_grad * scale * xi + scale**2 / prior_std**2 - 1.0,
    )


@dataclass
class AdamState:
    """Adam moments for one parameter tensor (beta = (0.9, 0.999), eps = 1e-8, as torch's
    default ``Adam``), with a step size that may differ per sample."""

    first: Tensor
    second: Tensor
    count: int = 0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    @classmethod
    def zeros_like(cls, like: Tensor) -> AdamState:
        return cls(torch.zeros_like(like), torch.zeros_like(like))

    def step(self, param: Tensor, grad: Tensor, step_size: Tensor) -> Tensor:
        """One Adam update: ``param - lr * m_hat / (sqrt(v_hat) + eps)``; returns the new value."""
        self.count += 1
        self.first = self.beta1 * self.first + (1 - self.beta1) * grad
        self.second = self.beta2 * self.second + (1 - self.beta2) * grad * grad
        m_hat = self.first / (1 - self.beta1**self.count)
        v_hat = self.second / (1 - self.beta2**self.count)
        return param - step_size * m_hat / (torch.sqrt(v_hat) + self.eps)


def _chain_times(ell: Tensor, n: int) -> Tensor:
    """Chain times ``floor(linspace(0, ell, n))`` per sample (float32 linspace, as the
    reference), decreasing: ``[n, b]`` on the CPU, with row 0 = ``ell`` and row ``n - 1`` = 0."""
    columns = {}
    for value in torch.unique(ell).tolist():
        columns[value] = torch.linspace(0, value, n, dtype=torch.float32).long().flip(0)
    return torch.stack([columns[v] for v in ell.tolist()], dim=1)


def _upper_indices(config: MGDMConfig) -> list[int]:
    """``ell = p`` at every outer step: the longest chains, an upper bound of the uniform rules."""
    grid = timestep_grid(config.num_steps).tolist()
    return [grid[config.num_steps - 3 - i] for i in range(config.outer_steps)]


def network_calls(config: MGDMConfig, indices: list[int]) -> tuple[int, int]:
    """Forward-only and forward+backward calls per sample for a given sequence of ``ell``.

    ``1 + R * sum_i (min(M, ell_i + 1) - 1)`` forward (one-shot Tweedie counts 1) and
    ``R * S * sum_i G(i)`` VJPs (docs/algorithms/mgdm.md §9).
    """
    forward = 1
    for ell in indices:
        n = min(config.denoising_steps, ell + 1)
        per_sweep = 1 if (n < 2 or config.denoiser_posterior == "exact") else n - 1
        forward += config.gibbs_sweeps * per_sweep
    return forward, config.expected_vjp()
