import json
import subprocess
import sys

import pytest

from mgdm.bench.seeds import parse_seeds
from mgdm.cli import main


def test_bench_gmm_writes_one_row_per_problem(tmp_path, capsys):
    path = tmp_path / "rows.json"
    status = main(
        [
            "bench",
            "gmm",
            "--dim",
            "4",
            "--obs-dim",
            "1",
            "2",
            "--seeds",
            "0-1",
            "--samples",
            "50",
            "--directions",
            "50",
            "--num-steps",
            "12",
            "--json",
            str(path),
            "--quiet",
        ]
    )
    assert status == 0
    rows = json.loads(path.read_text())
    assert len(rows) == 4
    expected_keys = {
        "sampler",
        "dim",
        "obs_dim",
        "seed",
        "sw",
        "sw_floor",
        "sw_prior",
        "nfe_forward",
        "nfe_backward",
        "seconds",
        "n_samples",
    }
    assert set(rows[0]) == expected_keys
    assert {(r["obs_dim"], r["seed"]) for r in rows} == {(1, 0), (1, 1), (2, 0), (2, 1)}
    table = capsys.readouterr().out
    assert "| 4 | 1 | mgdm | 2 |" in table and "| 4 | 2 | mgdm | 2 |" in table


@pytest.mark.parametrize(
    "argv,message",
    [
        (["bench", "gmm", "--seeds", "3-1"], "cannot read the seeds"),
        (["bench", "gmm", "--seeds", "a"], "cannot read the seeds"),
        (["bench", "gmm", "--samplers", "foo"], "unknown sampler 'foo'"),
        (["bench", "gmm", "--dim", "7"], "even integers"),
        (["bench", "gmm", "--num-steps", "2"], "num_steps"),
        (["bench", "gmm", "--gibbs-sweeps", "0"], "gibbs_sweeps"),
        (["bench", "gmm", "--gradient-steps", "3,x"], "cannot read the schedule"),
        (["bench", "gmm", "--samples", "1"], "--samples"),
    ],
)
def test_bad_arguments_get_one_line_and_status_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_unknown_choice_is_an_argparse_error():
    completed = subprocess.run(
        [sys.executable, "-m", "mgdm.cli", "bench", "gmm", "--index-rule", "random"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2 and "invalid choice" in completed.stderr


def test_parse_seeds():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds("5") == [5]
    with pytest.raises(ValueError):
        parse_seeds("")


def test_gmm_table_reads_saved_rows(tmp_path, capsys):
    path = tmp_path / "rows.json"
    assert (
        main(
            [
                "bench",
                "gmm",
                "--dim",
                "2",
                "--obs-dim",
                "1",
                "--seeds",
                "0",
                "--samples",
                "20",
                "--directions",
                "20",
                "--num-steps",
                "8",
                "--preset",
                "reference",
                "--json",
                str(path),
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert main(["bench", "gmm-table", str(path)]) == 0
    assert capsys.readouterr().out == printed
    assert "| mgdm-reference |" in printed
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["bench", "gmm-table", str(bad)]) == 2


def test_pivot_table_has_one_line_per_sampler():
    from mgdm.bench.gmm import GMMRow, pivot_table

    rows = [
        GMMRow(name, 8, m, seed, sw, 0.1, 9.0, 98, 410, 1.0, 100)
        for name, base in (("a", 1.0), ("b", 2.0))
        for m in (1, 2)
        for seed, sw in ((0, base), (1, base + 0.5))
    ]
    table = pivot_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| sampler | d=8, d_y=1 | d=8, d_y=2 |")
    assert lines[2].startswith("| a | **1.25 ± 0.49** | **1.25 ± 0.49** |")
    assert lines[3].startswith("| b | 2.25 ± 0.49 |")
    assert "| *exact-vs-exact floor* | 0.10 | 0.10 |" in table


def test_paired_ratio_table_averages_per_seed_ratios(tmp_path, capsys):
    from mgdm.bench.gmm import GMMRow, paired_ratio_table, write_json

    def row(name, obs_dim, seed, sw):
        return GMMRow(name, 8, obs_dim, seed, sw, 0.1, 9.0, 98, 410, 1.0, 100)

    rows = [row("a", 1, 0, 1.0), row("a", 1, 1, 4.0), row("b", 1, 0, 2.0), row("b", 1, 1, 2.0)]
    rows += [row("a", 2, 0, 3.0), row("b", 2, 0, 1.0), row("a", 2, 5, 1.0)]  # seed 5: a only
    lines = paired_ratio_table(rows, "a", "b").splitlines()
    # d_y = 1: ratios 0.5 and 2 (mean 1.25, geometric 1.00, a lower on 1 of 2); d_y = 2: 3 on 1
    assert lines[2] == "| d=8, d_y=1 | 1.25 | 1.00 | 1 | 2 |"
    assert lines[3] == "| d=8, d_y=2 | 3.00 | 3.00 | 0 | 1 |"
    assert lines[4] == "| *average over columns* | 2.12 | 2.00 | | |"
    with pytest.raises(ValueError, match="share no problem"):
        paired_ratio_table(rows, "a", "c")
    path = tmp_path / "rows.json"
    write_json(rows, path)
    assert main(["bench", "gmm-table", str(path), "--paired", "a/b"]) == 0
    assert "| *average over columns* | 2.12 |" in capsys.readouterr().out
    assert main(["bench", "gmm-table", str(path), "--paired", "a"]) == 2
    assert "--paired takes two sampler labels as A/B" in capsys.readouterr().err
