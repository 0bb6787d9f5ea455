"""The key-value memory (docs/reference.md §10): the paper's write equations, the read-out as the general network's
one-step update (float64), one-shot writing by cost, batching and dtype, and clear errors."""

from __future__ import annotations

import statistics
import time

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from assocmem import retrieve
from assocmem.keyvalue import (
    READOUTS,
    KeyValueMemory,
    Max,
    PlasticityRule,
    Step,
    key_value_network,
    readout_lagrangian,
)
from assocmem.lagrangians import LogSumExp

F64 = torch.float64


def signs(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, shape, generator=g).to(F64) * 2 - 1


def random_rule(seed):
    """A rule far from the designed one: every slope, offset and rate random (the decay in (0, 1))."""
    g = torch.Generator().manual_seed(seed)
    r = lambda: torch.randn(2, generator=g).tolist()  # noqa: E731
    return PlasticityRule(r(), r(), r(), r(), key_rate=0.7, value_rate=0.4, value_decay=0.8)


# ------------------------------------------------------------------------------------------------ read-outs
@pytest.mark.parametrize("lagrangian", [Max(), Step(0.3), Step(-1.0)], ids=repr)
def test_readout_activation_is_the_gradient_of_its_lagrangian(lagrangian):
    z = torch.randn(5, 7, dtype=F64, requires_grad=True)  # ties have probability 0
    (grad,) = torch.autograd.grad(lagrangian(z).sum(), z)
    torch.testing.assert_close(lagrangian.activation(z.detach()), grad)
    assert lagrangian.convex


def test_hardmax_is_the_cold_limit_of_the_softmax():
    z = torch.randn(6, 9, dtype=F64)
    torch.testing.assert_close(LogSumExp(beta=1e4).activation(z), Max().activation(z), atol=1e-12, rtol=0)
    torch.testing.assert_close(LogSumExp(beta=1e4)(z), Max()(z), atol=1e-3, rtol=0)


# ------------------------------------------------------------------------------------------------ writing
def test_designed_sequential_write_copies_the_key_and_stores_the_value_in_one_slot():
    mem = KeyValueMemory(6, 4, value_size=3).double()
    xi, ys = signs(2, 5, 6), signs(2, 5, 3, seed=1)
    state = mem.init_state(2, dtype=F64)
    for t in range(5):
        new = mem.write(state, xi[:, t], ys[:, t])
        i = t % 4
        torch.testing.assert_close(new.keys[:, i], xi[:, t])  # K row i <- x (pre-only rule, eta = 1)
        others = [j for j in range(4) if j != i]
        torch.testing.assert_close(new.keys[:, others], state.keys[:, others])
        h_new = torch.softmax(new.keys @ xi[:, t].unsqueeze(2), dim=1).squeeze(2)
        torch.testing.assert_close(new.values[:, :, i], ys[:, t] * h_new[:, i : i + 1])  # V col i <- y h'_i
        torch.testing.assert_close(new.values[:, :, others], state.values[:, :, others])
        assert new.steps.tolist() == [t + 1, t + 1]
        state = new
    skipped = mem.write(state, xi[:, 0], ys[:, 0], gate=0.0)  # q = 0: nothing stored, the turn moves on
    torch.testing.assert_close(skipped.keys, state.keys)
    torch.testing.assert_close(skipped.values, state.values)
    assert skipped.steps.tolist() == [6, 6]


def paper_write(K, V, x, y, q, gamma, mem):
    """Sections 2.2-2.3 and 3.2 transcribed for one memory with full matrices: eta^K (N, d), eta^V (m, N).

    The read-out ``f(K x)`` is the memory's own (tested against the general network below): with the hard max and
    the step, slots holding the same key tie, and a different order of summation could break the tie differently.
    """
    rule = mem.rule
    n, d = K.shape
    m = V.shape[0]
    (afk, bfk), (agk, bgk) = rule.key_pre.double(), rule.key_post.double()
    (afv, bfv), (agv, bgv) = rule.value_pre.double(), rule.value_post.double()
    h = mem.hidden(K[None], x[None, None])[0, 0]
    eta_k = q * gamma.unsqueeze(1) * rule.key_rate.double() * torch.ones(n, d, dtype=F64)
    K = (1 - eta_k) * K + eta_k * torch.outer(agk * h + bgk, afk * x + bfk)
    h2 = mem.hidden(K[None], x[None, None])[0, 0]
    hebb = torch.outer(agv * y + bgv, afv * h2 + bfv)
    if mem.value_rule == "local":
        eta_v = q * gamma.unsqueeze(0) * rule.value_rate.double() * torch.ones(m, n, dtype=F64)
        V = (1 - eta_v) * V + eta_v * hebb
    else:
        lam = (1 - q) + q * rule.value_decay.double()
        V = lam * V + q * rule.value_rate.double() * hebb
    return K, V


@pytest.mark.parametrize("value_rule", ["local", "passive"])
@pytest.mark.parametrize("readout", READOUTS)
def test_write_follows_the_papers_hadamard_form_for_a_general_rule(value_rule, readout):
    mem = KeyValueMemory(
        5,
        6,
        value_size=3,
        readout=readout,
        beta=0.7,
        threshold=0.5,
        local_factor="random",
        p=0.5,
        value_rule=value_rule,
        rule=random_rule(3),
    ).double()
    g = torch.Generator().manual_seed(4)
    state = mem.init_state(3, dtype=F64)
    xs, ys, qs = torch.randn(7, 3, 5, dtype=F64), torch.randn(7, 3, 3, dtype=F64), torch.rand(7, 3, dtype=F64)
    K, V = state.keys.clone(), state.values.clone()
    for t in range(7):
        ahead = torch.Generator().set_state(g.get_state())  # the draws the write is about to make
        gamma = (torch.rand((3, 6), generator=ahead) < 0.5).to(F64)
        state = mem.write(state, xs[t], ys[t], qs[t], generator=g)
        for b in range(3):
            K[b], V[b] = paper_write(K[b], V[b], xs[t, b], ys[t, b], qs[t, b], gamma[b], mem)
    torch.testing.assert_close(state.keys, K)
    torch.testing.assert_close(state.values, V)


def test_memories_of_a_batch_are_independent_and_the_dtype_follows_the_inputs():
    mem = KeyValueMemory(8, 5, value_rule="passive", rule=random_rule(0))
    xi, q = signs(3, 9, 8), torch.rand(3, 9, dtype=F64)
    together = mem.store(mem.init_state(3, dtype=F64), xi, gates=q)
    assert together.keys.dtype == F64 and mem.read(together, xi[:, 0]).dtype == F64
    for b in range(3):
        alone = mem.store(mem.init_state(1, dtype=F64), xi[b : b + 1], gates=q[b : b + 1])
        torch.testing.assert_close(alone.keys[0], together.keys[b])
        torch.testing.assert_close(alone.values[0], together.values[b])
    queries = signs(3, 4, 8, seed=2)
    assert mem.read(together, queries).shape == (3, 4, 8)
    torch.testing.assert_close(mem.read(together, queries)[:, 1], mem.read(together, queries[:, 1]))


# ------------------------------------------------------------------------------------------------ the theory
@pytest.mark.parametrize("readout", READOUTS)
def test_readout_is_one_step_of_the_reduced_three_layer_network(readout):
    """y~ = V f(K x~) is the Euler step dt = tau_y, from y = 0 with x clamped, of the network with h integrated
    out (tau_h -> 0); the general Network computes the reference (docs/reference.md §10)."""
    mem = KeyValueMemory(
        7,
        5,
        value_size=4,
        readout=readout,
        beta=0.8,
        threshold=0.2,
        value_rule="passive",
        rule=random_rule(1),
    ).double()
    state = mem.store(
        mem.init_state(2, dtype=F64), torch.randn(2, 6, 7, dtype=F64), torch.randn(2, 6, 4, dtype=F64)
    )
    queries = torch.randn(2, 3, 7, dtype=F64)
    out = mem.read(state, queries)
    for b in range(2):
        net = key_value_network(
            state.keys[b], state.values[b], readout_lagrangian(readout, 0.8, 0.2), tau_output=2.5
        )
        reduced = net.integrate_out("h")
        start = {"x": queries[b], "y": torch.zeros(3, 4, dtype=F64)}
        y1 = start["y"] + 2.5 * reduced.velocity(start, clamp={"x": True})["y"]
        torch.testing.assert_close(out[b], y1)
        # the unreduced network with h at its adiabatic value u_h = K x + V^T y gives the same output velocity,
        # and h does not move there
        full = {**start, "h": queries[b] @ state.keys[b].T}
        v = net.velocity(full, clamp={"x": True})
        torch.testing.assert_close(start["y"] + 2.5 * v["y"], out[b])
        torch.testing.assert_close(v["h"], torch.zeros_like(v["h"]))


def test_autoassociative_softmax_memory_reads_out_as_model_b():
    """Keys = the stored patterns, V = K^T diag(h'): the read-out is retrieve's one step with those values."""
    mem = KeyValueMemory(12, 16, beta=0.5).double()
    xi = signs(2, 10, 12)
    state = mem.store(mem.init_state(2, dtype=F64), xi)
    cues = xi * (torch.rand(2, 10, 12, dtype=F64) > 0.4)
    expect = retrieve(state.keys, cues, 0.5, values=state.values.transpose(1, 2))
    torch.testing.assert_close(mem.read(state, cues), expect)
    torch.testing.assert_close(state.keys[:, :10], xi)


# ------------------------------------------------------------------------------------------------ one shot
class CountCalls(TorchFunctionMode):
    """Counts every torch function the code under it calls (a loop over stored items would call more)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("local_factor", ["sequential", "random"])
def test_writing_is_one_shot_its_cost_does_not_grow_with_the_items_stored(local_factor):
    torch.manual_seed(0)
    n, d = 1024, 64
    mem = KeyValueMemory(d, n, local_factor=local_factor, p=4 / n)
    items = torch.sign(torch.randn(1, 1000, d))
    few = mem.store(mem.init_state(1), items[:, :10])
    many = mem.store(mem.init_state(1), items)
    x = torch.sign(torch.randn(1, d))
    cost = {}
    for name, state in (("few", few), ("many", many)):
        with CountCalls() as calls, FlopCounterMode(display=False) as flops:
            mem.write(state, x)
        cost[name] = (calls.calls, flops.get_total_flops())
    assert cost["few"] == cost["many"], cost
    assert cost["few"][1] <= 8 * n * d  # two key matches and the outer products: O(N d), not O(items N d)
    times = {"few": [], "many": []}
    for _ in range(25):  # interleaved, medians
        for name, state in (("few", few), ("many", many)):
            t0 = time.perf_counter()
            mem.write(state, x)
            times[name].append(time.perf_counter() - t0)
    ratio = statistics.median(times["many"]) / statistics.median(times["few"])
    assert ratio < 2.0, f"a write into a memory of 1000 items took {ratio:.2f} x one into a memory of 10"


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_arguments_get_errors_that_name_them():
    with pytest.raises(ValueError, match="slots"):
        KeyValueMemory(4, 0)
    with pytest.raises(ValueError, match="readout"):
        KeyValueMemory(4, 4, readout="sparsemax")
    with pytest.raises(ValueError, match="local_factor"):
        KeyValueMemory(4, 4, local_factor="novelty")
    with pytest.raises(ValueError, match="p "):
        KeyValueMemory(4, 4, local_factor="random", p=1.5)
    with pytest.raises(ValueError, match="beta"):
        KeyValueMemory(4, 4, beta=-1.0)
    with pytest.raises(ValueError, match="value_rule"):
        KeyValueMemory(4, 4, value_rule="active")
    with pytest.raises(ValueError, match="value_decay"):
        PlasticityRule(value_decay=1.5)
    with pytest.raises(ValueError, match="key_pre"):
        PlasticityRule(key_pre=(1.0, float("nan")))
    mem = KeyValueMemory(4, 3, value_size=2)
    state = mem.init_state(2)
    x, y = torch.ones(2, 4), torch.ones(2, 2)
    with pytest.raises(ValueError, match="key must have shape"):
        mem.write(state, torch.ones(2, 5), y)
    with pytest.raises(ValueError, match="value is required"):
        mem.write(state, x)
    with pytest.raises(ValueError, match="key holds NaN"):
        mem.write(state, torch.full((2, 4), float("nan")), y)
    with pytest.raises(ValueError, match="gate"):
        mem.write(state, x, y, gate=-1.0)
    with pytest.raises(ValueError, match="gate"):
        mem.write(state, x, y, gate=torch.ones(3))
    with pytest.raises(TypeError, match="float64"):
        mem.write(state, x.double(), y.double())
    with pytest.raises(ValueError, match="queries must have shape"):
        mem.read(state, torch.ones(3, 4))
    with pytest.raises(TypeError, match="state must be a MemoryState"):
        mem.read({"keys": None}, x)
    with pytest.raises(ValueError, match=r"state\.keys"):
        KeyValueMemory(5, 3, value_size=2).read(state, torch.ones(2, 5))
    with pytest.raises(ValueError, match="values hold"):
        mem.store(state, torch.ones(2, 3, 4), torch.ones(2, 2, 2))


def test_linear_readout_is_the_hebbian_outer_product_memory():
    """With L_h = 1/2 |h|^2 the designed memory reads out d (sum_i y_i x_i^T) x~ for +-1 keys, T <= N."""
    mem = KeyValueMemory(10, 12, value_size=6, readout="linear").double()
    xs, ys = signs(2, 9, 10), signs(2, 9, 6, seed=1)
    state = mem.store(mem.init_state(2, dtype=F64), xs, ys)
    cues = torch.randn(2, 5, 10, dtype=F64)
    hebbian = ys.transpose(1, 2) @ xs  # (B, m, d)
    torch.testing.assert_close(mem.read(state, cues), 10 * cues @ hebbian.transpose(1, 2))


def test_gates_are_one_per_memory_and_item_never_broadcast_across_them():
    mem = KeyValueMemory(4, 3)
    state = mem.init_state(3)
    xs = torch.ones(3, 3, 4)
    with pytest.raises(ValueError, match=r"gates must be a number or a tensor of shape \(3, 3\)"):
        mem.store(state, xs, gates=torch.ones(3))  # (B,) would silently stand for (T,) since B == T
    stored = mem.store(state, xs, gates=torch.tensor([[1.0], [0.0], [1.0]]))  # one gate per memory
    assert stored.keys[1].abs().sum() == 0 and stored.keys[0].abs().sum() > 0
    with pytest.raises(TypeError, match="gate must be a number"):
        mem.write(state, xs[:, 0], gate="on")


def test_bad_arguments_of_the_tasks_and_of_meta_learning():
    from assocmem.keyvalue import meta_learn, tasks

    with pytest.raises(ValueError, match="fraction"):
        tasks.occlude(torch.ones(2, 3), 1.5)
    with pytest.raises(ValueError, match="fill"):
        tasks.occlude(torch.ones(2, 3), 0.5, fill="noise")
    with pytest.raises(ValueError, match="delay"):
        tasks.continual_schedule(2, 10, 0)
    with pytest.raises(ValueError, match="prompt"):
        tasks.sequence_recall(KeyValueMemory(4, 4), torch.ones(1, 3, 4), prompt=2)
    with pytest.raises(ValueError, match="steps"):
        meta_learn(KeyValueMemory(4, 4), steps=0)
    with pytest.raises(ValueError, match="lengths"):
        meta_learn(KeyValueMemory(4, 4), steps=1, lengths=(5, 2))
    with pytest.raises(TypeError, match="threshold"):
        Step("high")


def test_value_checks_follow_the_switch_and_name_the_argument():
    """docs/bad-input.md: NaN in a write's items is refused; with the value checks off it passes (NaN in the state),
    and the next checked read names the state."""
    from assocmem import checks

    mem = KeyValueMemory(4, 3)
    state = mem.init_state(2)
    bad = torch.ones(2, 4)
    bad[1, 2] = float("nan")
    with pytest.raises(
        ValueError, match=r"KeyValueMemory.write: key holds NaN or Inf \(nan at index \(1, 2\)\)"
    ):
        mem.write(state, bad)
    with checks.value_checks(False):
        poisoned = mem.write(state, bad)
        assert torch.isnan(mem.read(poisoned, torch.ones(2, 4))).any()
    with pytest.raises(ValueError, match=r"state\.keys holds NaN"):
        mem.read(poisoned, torch.ones(2, 4))
