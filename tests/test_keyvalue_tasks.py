"""Quick versions of the key-value memory's recorded experiments (experiments/keyvalue_*.py, docs/keyvalue.md):
autoassociation against the classical Hopfield network, the palimpsest curve, heteroassociation, sequences and
meta-learning of the plasticity rule."""

from __future__ import annotations

import pytest
import torch

from assocmem.keyvalue import KeyValueMemory, PlasticityRule, baselines, meta_learn, tasks, update_angles

N = 32  # d = N, as in the paper's benchmark (d = N = 40 there)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def kv_accuracy(memory, xi, cues, g):
    return tasks.sign_accuracy(tasks.autoassociative_recall(memory, xi, cues, generator=g), xi)


def test_autoassociation_on_par_with_or_above_the_classical_network_of_equal_size():
    g = gen()
    seq, rnd = KeyValueMemory(N, N), KeyValueMemory(N, N, local_factor="random", p=0.1)
    acc = {}
    for T in (N // 4, N, 2 * N):
        xi = tasks.random_patterns(12, T, N, generator=g)
        zero = tasks.occlude(xi, 0.6, generator=g)  # the paper's cue
        cue = tasks.occlude(xi, 0.6, fill="random", generator=g)  # the same +-1 cue for every network
        acc[T] = {
            "seq-zero": kv_accuracy(seq, xi, zero, g),
            "seq": kv_accuracy(seq, xi, cue, g),
            "rnd": kv_accuracy(rnd, xi, cue, g),
            "hopfield": tasks.sign_accuracy(baselines.hopfield_recall(xi, cue, generator=g), xi),
        }
    assert acc[N // 4]["seq-zero"] >= 0.99 and acc[N]["seq-zero"] >= 0.99  # one slot per item up to T = N
    assert acc[2 * N]["seq-zero"] < 0.9  # then items are overwritten
    for T in acc:  # at the same size and on the same cues, never below the classical network
        assert acc[T]["seq"] > acc[T]["hopfield"] and acc[T]["rnd"] > acc[T]["hopfield"] - 0.02, acc
    assert acc[N // 4]["rnd"] > acc[N]["rnd"] > acc[2 * N]["rnd"]  # random slots: a smooth decline


def test_continual_recall_forgets_gradually():
    """The palimpsest: recent items are recalled, old ones fade; in steps of N for sequential slots, smoothly for
    random ones (the paper's figure 4a)."""
    g = gen(1)
    seq, rnd = KeyValueMemory(N, N), KeyValueMemory(N, N, local_factor="random", p=4 / N)
    delays = (2, N - 2, N + 8, 3 * N)
    a_seq = [tasks.continual_recall(seq, r, batch=8, length=8 * N, generator=g) for r in delays]
    a_rnd = [tasks.continual_recall(rnd, r, batch=8, length=8 * N, generator=g) for r in delays]
    assert min(a_seq[:2]) > 0.98 > a_seq[2] > a_seq[3], a_seq  # the step after N
    assert a_rnd[0] > a_rnd[1] > a_rnd[2] > a_rnd[3] > 0.55, a_rnd  # a smooth decline, never a blackout
    assert a_rnd[0] - a_rnd[1] < 0.5 * (a_rnd[0] - a_rnd[3]) + 0.1


def test_heteroassociation_and_sequences():
    g = gen(2)
    m = N // 2
    keys = tasks.random_patterns(8, N // 2, N, generator=g)
    values = tasks.random_patterns(8, N // 2, m, generator=g)
    cues = tasks.occlude(keys, 0.6, generator=g)
    mem = KeyValueMemory(N, N, value_size=m)
    out = mem(keys, cues, values)
    assert tasks.sign_accuracy(out, values) >= 0.99
    bam = baselines.bam_recall(keys, values, cues)
    assert tasks.sign_accuracy(bam, values) < tasks.sign_accuracy(out, values)
    # sequences: T - 1 transitions fit in N slots; of 2N - 1 only the last N remain, so from an early prompt the
    # chain breaks
    seq = KeyValueMemory(N, N)
    short = tasks.random_patterns(8, N, N, generator=g)
    recalled = tasks.sequence_recall(seq, short, prompt=N // 2)
    assert torch.equal(recalled, short[:, N // 2 + 1 :])
    long = tasks.random_patterns(8, 2 * N, N, generator=g)
    assert tasks.sign_accuracy(tasks.sequence_recall(seq, long, prompt=N // 4), long[:, N // 4 + 1 :]) < 0.9


def test_meta_learning_recovers_the_designed_rule():
    """From a rule with no preference (every slope and offset 0.01), gradient descent through write-then-read
    episodes makes the key rule pre-only and the value rule Hebbian."""
    g = gen(3)
    n = 8
    mem = KeyValueMemory(n, n, value_rule="passive", rule=PlasticityRule.uniform(0.01))
    xi = tasks.random_patterns(16, 2 * n, n, generator=g)
    before = update_angles(mem, xi, generator=g)
    result = meta_learn(mem, steps=150, batch=16, lr=2e-2, lr_final=2e-3, record_every=50, generator=g)
    after = update_angles(mem, xi, generator=g)
    assert before["key"] > 40 and before["value"] > 40
    assert after["key"] < 10 and after["value"] < 5, after
    assert mem.rule.distance()["value"] < 5
    assert result.history[-1]["accuracy"] > result.history[0]["accuracy"] + 0.2
    designed = update_angles(KeyValueMemory(n, n), xi)
    assert designed == pytest.approx({"key": 0.0, "value": 0.0}, abs=1e-3)


def test_novelty_tells_stored_items_from_new_ones():
    mem = KeyValueMemory(N, N)
    xi = tasks.random_patterns(4, 10, N, generator=gen(4))
    state = mem.store(mem.init_state(4), xi)
    assert float(mem.novelty(state, xi[:, 3]).max()) == 0.0
    new = tasks.random_patterns(4, 1, N, generator=gen(5))[:, 0]
    assert float(mem.novelty(state, new).min()) > 0.2


def test_random_slots_are_reproducible_from_a_generator():
    mem = KeyValueMemory(N, N, local_factor="random")
    xi = tasks.random_patterns(2, 20, N, generator=gen(6))
    a = mem.store(mem.init_state(2), xi, generator=gen(7))
    b = mem.store(mem.init_state(2), xi, generator=gen(7))
    assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_memory_runs_on_the_inputs_device():
    mem = KeyValueMemory(N, N, local_factor="random").cuda()
    xi = tasks.random_patterns(4, 20, N, device="cuda")
    out = mem(xi, xi, generator=torch.Generator(device="cuda").manual_seed(0))
    assert out.device.type == "cuda" and out.shape == xi.shape
    cpu = KeyValueMemory(N, N)
    torch.testing.assert_close(KeyValueMemory(N, N).cuda()(xi, xi).cpu(), cpu(xi.cpu(), xi.cpu()))
