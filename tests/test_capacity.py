"""The capacity laboratory: theory functions, the published capacity numbers reproduced by running the
networks (classical one-step bit errors, KH16's appendix in reduced size), the search and fits, and the CLI."""

import json
import math

import pytest
import torch

from assocmem.cli import main
from assocmem.engines import ClassicalHopfield
from assocmem.laboratory import theory
from assocmem.laboratory.capacity import (
    ModelSpec,
    fit_scaling,
    largest_memories,
    measure_loads,
    random_patterns,
    wilson,
)
from assocmem.laboratory.random_starts import random_start_recovery
from assocmem.lagrangians import Polynomial
from assocmem.version import __version__
from tests.strict_json import load


def test_theory_functions_reproduce_the_published_table_to_its_rounding():
    """Phi(-1/sqrt(alpha)) gives the signal-to-noise table; AGS's fixed point gives alpha_c and m_c; KH16's
    error-free formula gives ~11 / ~360 / ~7240 at N = 100."""
    published = {0.105: 0.001, 0.138: 0.0036, 0.185: 0.010, 0.37: 0.05, 0.61: 0.10}
    for alpha, p in published.items():
        digits = 1 - math.floor(math.log10(p))  # the table's two significant figures (one for 0.001, 0.05)
        assert round(theory.classical_one_step_error(alpha), digits) == pytest.approx(
            p, abs=1.01 * 10**-digits
        )
    alpha_c, m_c = theory.ags_critical_load()
    assert round(alpha_c, 3) == 0.138 and round(m_c, 3) == 0.967
    assert math.isnan(theory.ags_overlap(0.14)) and theory.ags_overlap(0.1) > m_c
    assert [round(theory.error_free_capacity(n, 100), -1) for n in (2, 3, 4)] == [10, 360, 7240]
    assert 0.13 < theory.ags_load_at_bit_error(0.01) < alpha_c == theory.ags_load_at_bit_error(0.05)
    assert theory.exp_capacity_exponent(0.0) == pytest.approx(math.log(2) / 2)  # K ~ 2^(N/2)
    assert theory.exp_snr_exponent(1.0) == pytest.approx(2 - math.log(math.cosh(2)))
    # the finite-N moments converge to KH16's large-N formula
    for n in (2, 3):
        exact = theory.one_step_error(Polynomial(n), 3000, 200 if n == 2 else 600_000)
        assert exact == pytest.approx(
            theory.power_one_step_error(n, 3000, 200 if n == 2 else 600_000), rel=0.1
        )


@pytest.mark.parametrize("alpha", [0.105, 0.138, 0.185, 0.37])
def test_classical_one_step_bit_errors_match_signal_to_noise_within_sampling_error(alpha):
    """One synchronous step from every stored pattern of six 1000-neuron networks: the fraction of bits that flip
    is Phi(-sqrt(N/K)) within three standard errors. The standard error is the binomial one of the total count,
    or the spread between the networks when larger: bits of one network share its patterns, which makes the
    count vary about 1.5-2 times more than a binomial (measured; docs/binary-dam.md)."""
    neurons, networks = 1000, 6
    memories = round(alpha * neurons)
    gen = torch.Generator().manual_seed(round(alpha * 1000))
    rates = []
    for _ in range(networks):
        xi = random_patterns(memories, neurons, gen)
        step = ClassicalHopfield(xi).recall(xi, mode="sync", max_steps=1).states
        rates.append(float((step != xi).double().mean()))
    rate = sum(rates) / networks
    expected = theory.classical_one_step_error(memories / neurons)
    binomial = math.sqrt(expected * (1 - expected) / (networks * memories * neurons))
    between = float(torch.tensor(rates).std()) / math.sqrt(networks)
    assert abs(rate - expected) < 3 * max(binomial, between), (rate, expected, binomial, between)
    assert abs(rate - expected) < 0.25 * expected  # and the sampling error is small enough to mean something


def test_kh16_appendix_reduced():
    """N = 100, K = 2000, 200 random starts (10^4 in experiments/kh16_appendix.py): n = 2, 3 never end on a
    memory, n = 4 mostly does (for even powers -xi counts, being an equally deep minimum), n = 5 (nearly) always."""
    gen = torch.Generator().manual_seed(0)
    for model in ("power", "rectified"):
        got = {n: random_start_recovery(ModelSpec(model, n), 100, 2000, 200, gen) for n in (2, 3, 4, 5)}
        assert got[2]["recovered"] == got[3]["recovered"] == 0
        assert got[4]["recovered"] > 0.6 * 200
        assert got[5]["recovered"] >= 0.98 * 200 and got[5]["converged"] == 200
        if model == "power":  # even n: both signs of the memories are reached, about equally often
            assert got[4]["ended_on_negated_memory"] > 0.3 * got[4]["recovered"]
        else:
            assert got[4]["ended_on_negated_memory"] == 0


def test_wilson_interval():
    lo, hi = wilson(0, 10)
    z2 = 1.959963984540054**2
    assert lo == 0.0 and hi == pytest.approx(z2 / (10 + z2))
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(1 - hi) and 0.40 < lo < 0.41


def test_measure_loads_counts_and_intervals():
    rows = measure_loads(ModelSpec("classical"), 100, [4, 40], trials=30, flip=0.1, seed=1)
    easy, hard = rows
    assert easy["perfect_recall"]["fraction"] == 1.0 and easy["bit_error_rate"]["rate"] == 0.0
    assert hard["perfect_recall"]["fraction"] < 0.5 and hard["bit_error_rate"]["rate"] > 0.01
    for row in rows:
        lo, hi = row["bit_error_rate"]["ci95"]
        assert lo <= row["bit_error_rate"]["rate"] <= hi
        assert row["mean_final_overlap"]["value"] == pytest.approx(1 - 2 * row["bit_error_rate"]["rate"])
        assert row["bit_error_rate"]["bits"] == 30 * 100


def test_largest_memories_search_and_scaling_fits():
    k_true = 437
    calls = []

    def evaluate(k):
        calls.append(k)
        return 0.0 if k <= k_true else 1.0

    k, seen = largest_memories(evaluate, 0.5, resolution=0.0)
    assert k == k_true and len(seen) == len(calls) < 25
    assert largest_memories(lambda k: 1.0, 0.5)[0] == 0
    assert largest_memories(lambda k: 0.0, 0.5, limit=100)[0] == 64
    fit = fit_scaling(ModelSpec("power", 3), [50, 100, 200], [0.1 * n**2 for n in (50, 100, 200)])
    assert fit["law"] == "K = c N^2" and fit["constant"] == pytest.approx(0.1)
    assert fit["free_fit_exponent"] == pytest.approx(2.0)
    fit = fit_scaling(ModelSpec("exp"), [10, 20, 30], [3 * math.exp(0.4 * n) for n in (10, 20, 30)])
    assert fit["constant"] == pytest.approx(0.4) and fit["prefactor"] == pytest.approx(3.0)


def test_capacity_command_writes_results_and_figure(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["capacity", "--model", "classical", "--neurons", "60", "--memories", "3,12", "--trials", "12"]
    assert main([*args, "--flip", "0.1", "--seed", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'results.json'}" in printed
    results = load(out / "results.json")  # strict JSON
    assert [r["memories"] for r in results["results"]] == [3, 12]
    assert results["provenance"]["assocmem"] == __version__ and "commit" in results["provenance"]
    assert set(results["results"][0]) >= {"perfect_recall", "mean_final_overlap", "bit_error_rate", "theory"}
    assert results["theory"]["critical_load"] == pytest.approx(0.138, abs=1e-3)
    assert (out / "capacity.png").stat().st_size > 10_000


def test_capacity_command_sweeps_neurons_and_fits(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["capacity", "--model", "power", "--n", "2", "--sweep-neurons", "30,60", "--trials", "10"]
    assert main([*args, "--flip", "0", "--threshold", "0.02", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["fit"]["law"] == "K = c N" and 0.03 < results["fit"]["constant"] < 0.5
    assert "fit: K = c N with c =" in capsys.readouterr().out
    assert (out / "capacity.png").is_file()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--flip", "1.5"], "--flip: expected a fraction in \\[0, 1\\]"),
        (["--flip", "nan"], "--flip: expected a fraction"),
        (["--memories", "4,x"], "--memories: expected comma-separated integers >= 1"),
        (["--memories", "0,4"], "--memories: expected comma-separated integers >= 1"),
        (["--memories", "5,,10"], "--memories: expected comma-separated integers >= 1.*an empty item"),
        (["--neurons", "0"], "--neurons: expected an integer >= 1"),
        (["--model", "power", "--n", "0"], "--n: expected a number >= 1"),
        (["--model", "power"], "needs its degree n"),
        (["--model", "classical", "--n", "3"], "classical network has n = 2"),
        (["--trials", "0"], "--trials: expected an integer >= 1"),
        (["--max-sweeps", "0"], "--max-sweeps: expected an integer >= 1"),
    ],
)
def test_capacity_command_rejects_bad_options(tmp_path, capsys, options, message):
    base = {"--model": "classical", "--neurons": "20", "--memories": "2,4", "--trials": "2", "--flip": "0.1"}
    for flag, value in zip(options[::2], options[1::2], strict=True):
        base[flag] = value
    argv = ["capacity", *[x for kv in base.items() for x in kv], "--out", str(tmp_path)]
    try:
        status = main(argv)
    except SystemExit as done:  # argparse's own check of the option
        status = done.code
    assert status == 2
    assert pytest.importorskip("re").search(message, capsys.readouterr().err)


def test_sweep_figure_draws_power_and_exponential_laws(tmp_path):
    from assocmem.report import save_figure
    from assocmem.report.capacity_figure import sweep_figure

    for spec, sizes, kmax in [
        (ModelSpec("exp"), [12, 16, 20], [80, 1200, 20000]),
        (ModelSpec("classical"), [100, 200, 400], [13, 26, 51]),
    ]:
        fit = fit_scaling(spec, sizes, kmax)
        fit["one_step_theory_constant"] = 0.675 if spec.model == "exp" else 0.185
        points = [{"neurons": n, "largest_memories": k} for n, k in zip(sizes, kmax, strict=True)]
        results = {"points": points, "fit": fit, "threshold": 0.01, "model": {"description": spec.describe()}}
        fig = sweep_figure(results)
        labels = [line.get_label() for line in fig.axes[0].get_lines()]
        assert any(label.startswith("fit:") for label in labels) and any(
            "theory" in label for label in labels
        )
        assert fig.axes[0].get_xscale() == ("linear" if spec.model == "exp" else "log")
        assert save_figure(fig, tmp_path / f"{spec.model}.png").stat().st_size > 5_000
