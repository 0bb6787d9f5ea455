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

        self.encoder = nn.Linear(pixels, dim)
        self.decoder = nn.Linear(dim, pixels)
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
