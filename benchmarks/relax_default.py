"""Which integrator should ``relax`` use by default? dopri5 against the stiff method as the ratio of the layers'
time constants grows, on two networks, until every sample meets the stop rule (``max |dx/dt| <= 1e-4``) or
``t_max = 100``.

- model B with explicit memory neurons, the README's network: 48 generated 16x16 pictures, cues with 20% of the
  pixels flipped, ``beta = 20/256``, ``tau_f = 1`` and ``tau_h = 1 / ratio``;
- a convolutional network, the one of docs/theory.md: clamped 28x28 pixels, a layer-norm feature map
  (``tau = 1``), 64 log-sum-exp memories (``tau = 1 / ratio``), batch 4.

For each it prints the samples that met the stop rule and the force evaluations each method spent; the rule in
``assocmem.dynamics.relax.auto_method`` (``STIFF_RATIO``) is read off this table (docs/dynamics.md records a run).
Run: ``.venv/bin/python benchmarks/relax_default.py`` (seconds).
"""

import torch

import assocmem as am
from assocmem.data import flip_bits, sprites
from assocmem.dynamics.relax import auto_method
from assocmem.models import model_b

RATIOS = (1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 100.0)


def two_layer(ratio):
    patterns = sprites(48).flatten(1)
    cues = flip_bits(patterns, 0.2, generator=torch.Generator().manual_seed(0))
    return model_b(patterns, beta=20 / 256, tau_h=1 / ratio), {"v": cues, "h": torch.zeros(48, 48)}, None


def convolutional(ratio):
    gen = torch.Generator().manual_seed(1)
    net = am.Network(
        {
            "pixels": am.Layer((1, 28, 28), am.Tanh()),
            "edges": am.Layer((8, 14, 14), am.LayerNorm()),
            "memories": am.Layer(64, am.LogSumExp(beta=2.0), tau=1 / ratio),
        },
        [
            am.ConvSynapse(
                "pixels", "edges", 0.1 * torch.randn(8, 1, 4, 4, generator=gen), stride=2, padding=1
            ),
            am.DenseSynapse("edges", "memories", 0.01 * torch.randn(64, 8 * 14 * 14, generator=gen)),
        ],
    )
    state = net.zero_state(batch_size=4)
    state["pixels"] = torch.randn(4, 1, 28, 28, generator=gen)
    return net, state, {"pixels": True}


def main():
    print(f"{'network':<14} {'tau ratio':>9}  {'dopri5: settled, evaluations':>30}  {'stiff: settled, evaluations':>29}"
          "  default")  # fmt: skip
    for name, make in (("model B", two_layer), ("convolutional", convolutional)):
        for ratio in RATIOS:
            net, state, clamp = make(ratio)
            cells = []
            for method in ("dopri5", "stiff"):
                traj = am.relax(net, state, clamp=clamp, method=method, t_max=100.0)
                settled = f"{int(traj.converged.sum())}/{traj.converged.numel()}"
                cells.append(f"{settled:>7} at t = {float(traj.times[-1]):5.1f}, {traj.evaluations:5d}")
            print(f"{name:<14} {ratio:>9g}  {cells[0]:>30}  {cells[1]:>29}  {auto_method(net.tau)}")


if __name__ == "__main__":
    main()
