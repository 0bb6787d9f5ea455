"""Masked-patch completion with an Energy-Transformer block (Hoover et al. 2023; docs/ham-recipes-recon.md).

An image is cut into ``T`` square patches; each patch is encoded to a token of ``D`` units and a learned position
embedding is added; masked patches are replaced by a learned mask token (plus their position). The tokens are the
state ``x`` of one layer ``(T, D)`` of layer-norm neurons (``LayerNorm(dim=-1)``, one normalisation per token) with
the Energy Transformer's two energies (docs/reference.md §6):

    E = [sum_C x_C . g_C - L(x_C)] + E_ATT(g) + E_HN(g),    g_C = LayerNorm(x_C)

``E_ATT`` an :class:`~assocmem.network.AttentionTerm`, ``E_HN`` a ReLU-squared
:class:`~assocmem.network.HopfieldTerm`. Both are bounded below on layer-norm activations (``|g_C| = sqrt(D)``),
so the energy is. The block runs ``steps`` Euler steps of size ``dt`` of ``dx/dt = -dE/dg`` (the library's
relaxation) and a linear decoder reads every token's activation back to a patch. Training minimises the squared
error on the masked patches, backpropagating through the unrolled steps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from assocmem.checks import is_count, positive_float
from assocmem.dynamics import Trajectory, relax
from assocmem.ham.evaluation import energy_rises
from assocmem.lagrangians import LayerNorm, ReLU
from assocmem.network import AttentionTerm, HopfieldTerm, Layer, Network

#: the token layer's name in the block's network
TOKENS = "tokens"


def patchify(images: Tensor, patch: int) -> Tensor:
    """``(N, H, W)`` images to ``(N, T, patch * patch)`` tokens, row by row (``T = (H / patch) (W / patch)``)."""
    if images.dim() != 3 or images.shape[1] % patch or images.shape[2] % patch:
        raise ValueError(
            f"patchify: images must have shape (N, H, W) with H and W multiples of patch={patch}, got "
            f"{tuple(images.shape)}"
        )
    n, h, w = images.shape
    x = images.reshape(n, h // patch, patch, w // patch, patch).permute(0, 1, 3, 2, 4)
    return x.reshape(n, (h // patch) * (w // patch), patch * patch)


def unpatchify(tokens: Tensor, patch: int, height: int, width: int) -> Tensor:
    """The inverse of :func:`patchify`: ``(N, T, patch * patch)`` tokens to ``(N, height, width)`` images."""
    n = tokens.shape[0]
    x = tokens.reshape(n, height // patch, width // patch, patch, patch).permute(0, 1, 3, 2, 4)
    return x.reshape(n, height, width)


def random_mask(batch: int, tokens: int, masked: int, generator: torch.Generator | None = None) -> Tensor:
    """A bool mask ``(batch, tokens)`` with exactly ``masked`` True entries per row, chosen uniformly."""
    if not 0 < masked < tokens:
        raise ValueError(
            f"random_mask: masked must be between 1 and tokens - 1 = {tokens - 1}, got {masked!r}"
        )
    scores = torch.rand(batch, tokens, generator=generator)
    cut = scores.kthvalue(masked, dim=1, keepdim=True).values
    return scores <= cut


def _linear(fan_in: int, fan_out: int, generator: torch.Generator | None) -> nn.Linear:
    """``nn.Linear(fan_in, fan_out)`` with torch's default uniform initialisation drawn from ``generator`` (so a
    run's weights depend on its seed alone)."""
    layer = nn.Linear(fan_in, fan_out)
    bound = fan_in**-0.5
    with torch.no_grad():
        for p in (layer.weight, layer.bias):
            p.copy_((2 * torch.rand(p.shape, generator=generator) - 1) * bound)
    return layer


class PatchCompleter(nn.Module):
    """Encoder, one Energy-Transformer block relaxed for ``steps`` Euler steps of size ``dt``, and a decoder.

    ``image`` is the side of the square images, ``patch`` the side of a patch, ``dim`` the token width ``D``,
    ``heads`` and ``key_dim`` the attention's heads and key/query width, ``memories`` the Hopfield term's number
    of memories.

    Example: ``model = PatchCompleter(); out, traj = model(images, mask)``; ``out`` holds the completed patches
    ``(N, T, patch * patch)`` and ``traj.energies`` the block's energy at every step.
    """

    def __init__(
        self,
        image: int = 28,
        patch: int = 7,
        dim: int = 64,
        heads: int = 4,
        key_dim: int = 16,
        memories: int = 256,
        steps: int = 12,
        dt: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for value, arg in (
            (image, "image"),
            (patch, "patch"),
            (dim, "dim"),
            (heads, "heads"),
            (key_dim, "key_dim"),
            (memories, "memories"),
            (steps, "steps"),
        ):
            if not is_count(value):
                raise ValueError(f"PatchCompleter: {arg} must be a positive int, got {value!r}")
        if image % patch:
            raise ValueError(f"PatchCompleter: patch={patch} must divide image={image}")
        self.image, self.patch, self.steps = image, patch, steps
        self.dt = positive_float(dt, "dt", "PatchCompleter")
        tokens, pixels = (image // patch) ** 2, patch * patch

        def randn(*shape: int, scale: float) -> nn.Parameter:
            return nn.Parameter(scale * torch.randn(*shape, generator=generator))

        self.encoder = _linear(pixels, dim, generator)
        self.decoder = _linear(dim, pixels, generator)
        self.position = randn(tokens, dim, scale=0.02)
        self.mask_token = randn(dim, scale=0.02)
        attention = AttentionTerm(
            TOKENS, randn(heads, key_dim, dim, scale=0.02), randn(heads, key_dim, dim, scale=0.02)
        )
        hopfield = HopfieldTerm(TOKENS, randn(memories, dim, scale=0.02), ReLU())
        self.network = Network({TOKENS: Layer((tokens, dim), LayerNorm(dim=-1))}, [attention, hopfield])

    def start(self, images: Tensor, mask: Tensor) -> Tensor:
        """The initial token states ``(N, T, D)``: encoded patches (the mask token where ``mask`` is True) plus
        the position embedding."""
        encoded = self.encoder(patchify(images, self.patch))
        return torch.where(mask.unsqueeze(-1), self.mask_token, encoded) + self.position

    def forward(
        self, images: Tensor, mask: Tensor, *, gradient: str | None = "unrolled", record: bool = True
    ) -> tuple[Tensor, Trajectory]:
        """Complete the masked patches of ``images`` ``(N, H, W)`` (``mask`` ``(N, T)`` True on masked patches):
        returns the decoded patches of every token ``(N, T, patch * patch)`` and the block's trajectory."""
        traj = relax(
            self.network,
            {TOKENS: self.start(images, mask)},
            method="euler",
            dt=self.dt,
            t_max=self.steps * self.dt,
            tol=0.0,
            record=record,
            gradient=gradient,
        )
        g = self.network.layers[TOKENS].activation(traj.states[TOKENS])
        return self.decoder(g), traj

    def decode_state(self, x: Tensor) -> Tensor:
        """Decoded patches ``(N, T, patch * patch)`` of token states ``x``."""
        return self.decoder(self.network.layers[TOKENS].activation(x))


def masked_mse(predicted: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error per pixel over the masked tokens only (``predicted``, ``target`` ``(N, T, P)``)."""
    return (predicted - target)[mask].pow(2).mean()


#: the seed of the masks an evaluation draws (the same masks at every epoch and in ``ham eval``)
EVAL_SEED = 777


@torch.no_grad()
def evaluate_patches(
    model: PatchCompleter,
    test: Tensor,
    mean_patch: Tensor,
    *,
    masked: int,
    fixed_point_size: int,
    tol: float,
    t_max: float,
    batch_size: int = 1000,
) -> dict:
    """Masked-patch errors on test images ``(N, H, W)``, ``masked`` random patches hidden per image (docs/ham.md,
    "Masked patches"): ``block_mse`` after the trained steps, ``mean_patch_mse`` for the training set's mean
    patch of each position (``mean_patch``, ``(T, P)``), the energy checks over the steps; on the first
    ``fixed_point_size`` images the block relaxed further to a fixed point (dopri5 until ``tol``):
    ``fixed_point_mse``, the fraction ``fixed_point_converged`` (the block is trained for its steps, so a slow
    relaxation is reported, not an error; a state that runs away is) and the energy checks along those
    relaxations (``fixed_point_energy_non_increasing``, ``fixed_point_max_relative_energy_increase``)."""
    gen = torch.Generator().manual_seed(EVAL_SEED)
    tokens = (model.image // model.patch) ** 2
    sums = {"block_mse": 0.0, "mean_patch_mse": 0.0, "fixed_point_mse": 0.0}
    hidden = fixed_hidden = monotone = settled = steps = fixed_monotone = 0
    rise = rel = fixed_rel = 0.0
    n_fixed = min(fixed_point_size, test.shape[0])
    for i in range(0, test.shape[0], batch_size):
        images = test[i : i + batch_size]
        target = patchify(images, model.patch)
        mask = random_mask(images.shape[0], tokens, masked, gen)
        predicted, traj = model(images, mask, gradient=None)
        count, r, q = energy_rises(traj.energies, images.dtype)
        monotone, rise, rel = monotone + count, max(rise, r), max(rel, q)
        k = int(mask.sum())
        hidden += k
        sums["block_mse"] += float((predicted - target)[mask].pow(2).sum()) / target.shape[-1]
        sums["mean_patch_mse"] += (
            float((mean_patch.expand_as(target) - target)[mask].pow(2).sum()) / target.shape[-1]
        )
        if i >= n_fixed:
            continue
        part = slice(0, min(batch_size, n_fixed - i))
        fixed = relax(
            model.network,
            {TOKENS: model.start(images[part], mask[part])},
            method="dopri5",
            tol=tol,
            t_max=t_max,
            gradient=None,
        )
        settled += int(fixed.converged.sum())
        count, _, q = energy_rises(fixed.energies, images.dtype)
        fixed_monotone, fixed_rel = fixed_monotone + count, max(fixed_rel, q)
        steps = max(steps, int(fixed.steps.max()))
        at_fixed = model.decode_state(fixed.states[TOKENS])
        sums["fixed_point_mse"] += (
            float((at_fixed - target[part])[mask[part]].pow(2).sum()) / target.shape[-1]
        )
        fixed_hidden += int(mask[part].sum())
    n = test.shape[0]
    return {
        "samples": n,
        "block_mse": sums["block_mse"] / hidden,
        "mean_patch_mse": sums["mean_patch_mse"] / hidden,
        "energy_non_increasing": monotone / n,
        "max_energy_increase": rise,
        "max_relative_energy_increase": rel,
        "relaxed": n_fixed,
        "fixed_point_mse": sums["fixed_point_mse"] / fixed_hidden if fixed_hidden else None,
        "fixed_point_converged": settled / n_fixed if n_fixed else None,
        "fixed_point_max_steps": steps,
        "fixed_point_energy_non_increasing": fixed_monotone / n_fixed if n_fixed else None,
        "fixed_point_max_relative_energy_increase": fixed_rel,
    }
