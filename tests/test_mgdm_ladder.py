"""MGDM's oracle pieces (exact potential, exact x_ell draw), the observation-seeded mixture
index, and the ladder and compute-curve commands."""

import json
import math
from dataclasses import replace

import pytest
import torch
from torch.distributions import MultivariateNormal

from mgdm.bench.ladder import RUNGS, ladder_table, rung_config, select_rungs
from mgdm.diffusion import gmm_benchmark
from mgdm.gmm_problem import make_gmm_problem
from mgdm.metrics import sliced_wasserstein
from mgdm.operators import DenseOperator, GaussianNoise
from mgdm.priors import GaussianMixture, KernelDensityPrior
from mgdm.priors.exact_guidance import exact_guidance
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers import MGDM, preset
from mgdm.samplers.mgdm import PRESETS
from mgdm.samplers.mgdm_exact import draw_exact_conditional


def _dense_log_potential(prior, matrix, y, sigma_y, x, t):
    """``log sum_i r_i N(y; A m_i(x), sigma_y^2 I + v_i A A^T)`` by enumeration (dense)."""
    abar = prior.schedule.alpha_bar(t)[:, None].double()
    lam = prior.isotropic_variances[None]
    gamma = abar * lam + 1 - abar
    gain, var = abar.sqrt() * lam / gamma, lam * (1 - abar) / gamma
    log_r = torch.log_softmax(prior._isotropic_logits(x.double(), t)[2], -1)
    out = []
    for b in range(x.shape[0]):
        terms = []
        for i in range(prior.n_components):
            m = (1 - abar[b].sqrt() * gain[b, i]) * prior.means[i] + gain[b, i] * x[b].double()
            cov = sigma_y**2 * torch.eye(matrix.shape[0], dtype=torch.float64)
            cov = cov + var[b, i] * matrix @ matrix.T
            terms.append(log_r[b, i] + MultivariateNormal(matrix @ m, cov).log_prob(y))
        out.append(torch.logsumexp(torch.stack(terms), 0))
    return torch.stack(out)


@pytest.mark.parametrize("time", [5, 300, 900])
def test_exact_potential_matches_enumeration_on_a_mixture(time):
    case = make_gmm_problem(8, 2, 0)
    guidance = exact_guidance(case.prior, case.problem)
    x = case.prior.initial_state(SampleNoise([1, 2, 3]), time).double()
    t = torch.full((3,), time)
    ours = guidance.log_likelihood(x, t)
    matrix = case.problem.operator.matrix.double()
    y = case.problem.observation.double()
    dense = _dense_log_potential(case.prior, matrix, y, case.problem.sigma_y, x, t)
    # equal up to one constant (the normalisation of g): compare differences
    assert torch.allclose(ours - ours[0], dense - dense[0], atol=1e-8, rtol=1e-10)


def test_exact_potential_of_a_kernel_density_prior_matches_its_mixture():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(6, 1, 2, 3, generator=generator, dtype=torch.float64) * 2 - 1
    prior = KernelDensityPrior(images, 0.3, gmm_benchmark())
    matrix = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    flat = GaussianMixture(images.reshape(6, -1), torch.ones(6), 0.09, gmm_benchmark())
    y = torch.randn(3, generator=generator, dtype=torch.float64)
    flat_problem = Problem(DenseOperator(matrix), y.float(), GaussianNoise(0.2))
    x = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    t = torch.tensor([10, 200, 500, 800])
    expected = _dense_log_potential(flat, matrix, y, 0.2, x, t)
    ours = exact_guidance(flat, flat_problem).log_likelihood(x, t)
    assert torch.allclose(ours - ours[0], expected - expected[0], atol=1e-8)
    with pytest.raises(ValueError, match="Gaussian-mixture or kernel-density"):
        exact_guidance(object(), flat_problem)
    assert prior.mixture.isotropic_variances is not None


def test_exact_draw_matches_the_conditional_on_a_grid():
    """N(m, s^2) G(x) in 2-D, with G the exact potential: the importance-resampled draws have the
    mean and covariance of the target computed by quadrature, within 4 standard errors."""
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0]], dtype=torch.float64)
    prior = GaussianMixture(means, torch.tensor([0.3, 0.7]), 1.0, gmm_benchmark())
    matrix = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    problem = Problem(DenseOperator(matrix), torch.tensor([0.8]), GaussianNoise(0.3))
    guidance = exact_guidance(prior, problem)
    n, time = 4000, 400
    m = torch.tensor([0.5, -0.2], dtype=torch.float64).expand(n, 2)
    s = torch.full((n,), 0.8, dtype=torch.float64)
    t = torch.full((n,), time)
    draws = draw_exact_conditional(
        guidance.log_likelihood, guidance, False, m, s, t, 64, SampleNoise(range(n))
    )
    axis = torch.linspace(-5, 5, 401, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    log_target = guidance.log_likelihood(grid, torch.full((grid.shape[0],), time))
    log_target = log_target - 0.5 * ((grid - m[0]) ** 2).sum(-1) / 0.8**2
    weights = torch.softmax(log_target, 0)
    mean = (weights[:, None] * grid).sum(0)
    cov = (weights[:, None, None] * (grid - mean)[:, :, None] * (grid - mean)[:, None, :]).sum(0)
    error = math.sqrt(cov.diagonal().max() / n)
    assert torch.allclose(draws.mean(0), mean, atol=4 * error)
    assert torch.allclose(draws.T.cov(), cov, atol=0.1 * cov.diagonal().max())


def test_all_exact_gibbs_reaches_the_floor():
    """Every approximation exact and four sweeps: the sampler is the exact Gibbs sampler of the
    posterior's backward transitions, and its samples are as close to the exact posterior as a
    second exact set (measured: 0.069 vs floor 0.068 with 500 samples; default 0.18)."""
    case = make_gmm_problem(8, 2, 0)
    n = 300
    exact = case.posterior.sample(SampleNoise(range(n)))
    again = case.posterior.sample(SampleNoise(range(n, 2 * n)))
    floor = sliced_wasserstein(exact, again, 200, 0)
    config = rung_config(next(r for r in RUNGS if r.label == "all exact, R = 4"), particles=16)
    config = replace(config, num_steps=40)
    samples = MGDM(config).sample(case.prior, case.problem, range(10_000, 10_000 + n)).samples
    assert sliced_wasserstein(exact, samples.double(), 200, 0) < 1.5 * floor


def _index_sequence(problem, seeds):
    sampler = MGDM(preset("reference", num_steps=12, threshold=9))
    noise = SampleNoise(seeds)
    return sampler.index_seeds(problem, noise.batch_size)


def test_mixture_index_seed_follows_the_observation_not_the_batch():
    a, b = make_gmm_problem(4, 2, 0), make_gmm_problem(4, 2, 1)
    seeds_a = _index_sequence(a.problem, [1, 2, 3])
    assert len(set(seeds_a)) == 1  # one stream shared by the batch
    assert _index_sequence(a.problem, [7])[0] == seeds_a[0]  # whatever the batch
    assert _index_sequence(b.problem, [1])[0] != seeds_a[0]  # another problem, another stream


def test_ladder_rungs_and_table():
    assert select_rungs(None) == list(RUNGS)
    assert [r.label for r in select_rungs("R = 4")] == ["default", "R = 4"]
    with pytest.raises(ValueError, match="unknown ladder rung 'bogus'; accepted: default"):
        select_rungs("bogus")
    assert rung_config(RUNGS[2], 7).fit_particles == 7
    assert rung_config(RUNGS[0], 7) == preset("variational")


def test_ladder_command_runs_resumes_and_prints(tmp_path, capsys):
    from mgdm.cli import main

    db, out = tmp_path / "ladder.sqlite", tmp_path / "ladder.json"
    argv = ["bench", "ladder", "--dim", "4", "--obs-dim", "1", "--seeds", "0", "--samples", "20"]
    argv += ["--rungs", "exact potential", "--db", str(db), "--json", str(out), "--quiet"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "| exact potential |" in first and "gap closed" in first
    rows = json.loads(out.read_text())
    assert {row["sampler"] for row in rows} == {"default", "exact potential"}
    assert main(argv) == 0  # resumed: nothing reruns, the same table
    assert capsys.readouterr().out.split("\n")[:4] == first.split("\n")[:4]
    assert main(["bench", "ladder-table", str(db)]) == 0
    assert "| default |" in capsys.readouterr().out


def test_ladder_table_marks_oracles_and_gap_shares():
    from mgdm.bench.gmm import GMMRow

    def row(label, sw):
        return GMMRow(label, 8, 2, 0, sw, 1.0, 9.0, 98, 410, 1.0, 100)

    text = ladder_table([row("default", 3.0), row("exact potential", 2.0)])
    assert "| exact potential | 2.00 | +50 % | 98 | 410 | yes |" in text


def test_nfe_curve_command_and_table(tmp_path, capsys):
    from mgdm.bench.nfe_curve import curve_label, split_label
    from mgdm.cli import main

    assert split_label(curve_label("mgdm", 500)) == ("mgdm", 500)
    with pytest.raises(ValueError, match="not a curve label"):
        split_label("mgdm")
    out = tmp_path / "curve.json"
    argv = ["bench", "nfe-curve", "--dim", "4", "--obs-dim", "2", "--seeds", "0", "--samples"]
    argv += ["20", "--budgets", "150", "300", "--json", str(out), "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| N (calls / sample) | mgdm | dps |" in text
    assert "| 150 |" in text and "| 300 |" in text
    labels = {row["sampler"] for row in json.loads(out.read_text())}
    assert labels == {"mgdm@150", "dps@150", "mgdm@300", "dps@300"}
    # no --mgdm-preset: the gmm domain's preset (R = 2 sweeps of two line steps per grid point)
    grid = MGDM(PRESETS["gmm"]).with_budget(150).config.num_steps
    (mgdm_150,) = [row for row in json.loads(out.read_text()) if row["sampler"] == "mgdm@150"]
    assert (mgdm_150["nfe_forward"], mgdm_150["nfe_backward"]) == (
        1 + 2 * (grid - 3),
        4 * (grid - 3),
    )
    assert main(["bench", "nfe-curve-table", str(out)]) == 0
    assert capsys.readouterr().out.strip() == text.strip()
    variational = tmp_path / "variational.json"
    argv = ["bench", "nfe-curve", "--dim", "4", "--obs-dim", "2", "--seeds", "0", "--samples"]
    argv += ["20", "--budgets", "150", "--samplers", "mgdm", "--mgdm-preset", "variational"]
    assert main([*argv, "--json", str(variational), "--quiet"]) == 0
    rows = json.loads(variational.read_text())
    default_rows = [row for row in json.loads(out.read_text()) if row["sampler"] == "mgdm@150"]
    assert [row["sampler"] for row in rows] == ["mgdm@150"]  # the label keeps no preset name
    assert rows[0]["sw"] != default_rows[0]["sw"]  # another configuration: other samples


def test_nfe_curve_table_reports_the_paired_change_over_seeds():
    """SW(N_min) - SW(N_max) paired by seed: the spread between seeds cancels, so a change
    smaller than that spread is still significant when every seed improves."""
    from mgdm.bench.gmm import GMMRow
    from mgdm.bench.nfe_curve import curve_label, curve_table

    def row(budget: int, seed: int, sw: float) -> GMMRow:
        return GMMRow(curve_label("mgdm", budget), 8, 2, seed, sw, 0.1, 9.0, 1.0, 1.0, 1.0, 10)

    levels = [1.0, 3.0, 5.0, 7.0]  # per-seed difficulty: a spread of 2.6 around the mean
    rows = [row(200, s, v + 0.5) for s, v in enumerate(levels)]
    rows += [row(2000, s, v + 0.1 * s) for s, v in enumerate(levels)]  # improves by 0.5 - 0.1 s
    text = curve_table(rows)
    differences = [0.5 - 0.1 * s for s in range(4)]
    mean = sum(differences) / 4
    half = 1.96 * (sum((d - mean) ** 2 for d in differences) / 3 / 4) ** 0.5
    assert f"- mgdm: SW(200) - SW(2000) = {mean:.2f} ± {half:.2f} * (paired over 4 seeds)." in text
