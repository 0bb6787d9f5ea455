"""The sequence embedding: a 1-D convolution over one-hot amino acids and three position features, the maximum over
the positions of each sequence (docs/repertoire.md, "The model").

A CDR3 of length ``l`` is the matrix ``x (l, 23)``: 20 one-hot columns (``AMINO_ACIDS``) and three position
features. With ``t = i / (l - 1)`` the relative position of residue ``i`` (``t = 1/2`` for a single residue), the
distance to the centre is ``c = |1 - 2t|`` (1 at both ends, 0 in the middle); the first feature is ``c`` on the
first half (``t < 1/2``) and 0 after it, the second ``c`` on the second half and 0 before it, the third ``c``
everywhere. So a kernel tells the start of a sequence from its end and from its middle (DeepRC's three position
features, Widrich et al. 2020). The convolution (``dim`` kernels of ``kernel`` residues) runs over the windows that
start inside the sequence and do not run past it (``max(l - kernel + 1, 1)`` windows: a sequence shorter than the
kernel is one window, zero-padded), then the activation (SELU by default) and the maximum over those windows,
giving ``h (dim,)`` per sequence. Padding never takes part: a window past the end is set to ``-inf`` before the
maximum.

Bounded memory. :func:`embed_chunks` embeds a bag in chunks of sequences; while autograd records, each chunk runs
under ``torch.utils.checkpoint``: only the chunk's codes and its ``(chunk, dim)`` output are kept, and the
convolution's activations are recomputed, one chunk at a time, during the backward pass. Training on a bag of
``n`` sequences then holds the embeddings ``(n, dim)`` and one chunk's activations, whatever ``n``
(``benchmarks/repertoire_memory.py`` measures it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

#: Amino acids (the one-hot columns) and position features per residue.
LETTERS = 20
POSITION_FEATURES = 3


def position_features(lengths: Tensor, width: int, dtype: torch.dtype) -> Tensor:
    """The three position features ``(n, width, 3)`` of sequences of ``lengths`` (zero past each end)."""
    i = torch.arange(width, device=lengths.device, dtype=dtype)
    span = (lengths - 1).clamp(min=1).to(dtype).unsqueeze(1)
    t = torch.where(lengths.unsqueeze(1) > 1, i / span, torch.full_like(i, 0.5))
    inside = i < lengths.unsqueeze(1)
    centre = torch.where(inside, (1.0 - 2.0 * t).abs(), torch.zeros_like(t))
    first = torch.where(t < 0.5, centre, torch.zeros_like(centre))
    second = torch.where(t >= 0.5, centre, torch.zeros_like(centre))
    return torch.stack((first, second, centre), -1)


def one_hot(codes: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(n, L)`` codes (``PAD = 20`` after each end) as ``(n, L, 20)`` one-hot rows (the padding all zero)."""
    return F.one_hot(codes.long(), LETTERS + 1)[..., :LETTERS].to(dtype)


class SequenceEmbedding(nn.Module):
    """``h = max over windows of act(conv([onehot, position features]))``, ``(n, L, 20) -> (n, dim)``."""

    def __init__(self, dim: int, kernel: int, activation: str = "selu") -> None:
        super().__init__()
        self.dim, self.kernel, self.activation = dim, kernel, activation
        self.conv = nn.Conv1d(LETTERS + POSITION_FEATURES, dim, kernel)
        self.act = nn.SELU() if activation == "selu" else nn.ReLU()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, kernel={self.kernel}, activation={self.activation!r}"

    def forward(self, onehot: Tensor, lengths: Tensor) -> Tensor:
        """Embeddings ``(n, dim)`` of one-hot sequences ``(n, L, 20)`` (zero rows past each end) of ``lengths``."""
        n, width = onehot.shape[0], max(onehot.shape[1], self.kernel)
        x = torch.cat((onehot, position_features(lengths, onehot.shape[1], onehot.dtype)), -1)
        x = F.pad(x.transpose(1, 2), (0, width - onehot.shape[1]))  # (n, 23, width >= kernel)
        y = self.act(self.conv(x))  # (n, dim, width - kernel + 1)
        windows = torch.arange(y.shape[-1], device=y.device)
        valid = windows < (lengths - self.kernel + 1).clamp(min=1).unsqueeze(1)  # (n, windows)
        y = y.masked_fill(~valid.view(n, 1, -1), float("-inf"))
        return y.amax(-1)

    def from_codes(self, codes: Tensor, lengths: Tensor, dtype: torch.dtype) -> Tensor:
        """Embeddings ``(n, dim)`` of coded sequences ``(n, L)`` (``PAD`` after each end)."""
        return self(one_hot(codes, dtype), lengths)


def _embed_codes(embedding: nn.Module, codes: Tensor, lengths: Tensor, dtype: torch.dtype) -> Tensor:
    width = int(lengths.max())
    return embedding.from_codes(codes[:, :width], lengths, dtype)


def embed_chunks(
    embedding: nn.Module, codes: Tensor, lengths: Tensor, chunk: int, dtype: torch.dtype
) -> Tensor:
    """Embeddings ``(n, dim)`` of the coded sequences ``(n, L)``, ``chunk`` sequences at a time, by ``embedding``'s
    ``from_codes`` (the convolution here, or :class:`.gapped.GappedEmbedding`); while autograd records, each chunk is
    recomputed in the backward pass (``torch.utils.checkpoint``) instead of kept."""
    record = torch.is_grad_enabled() and any(p.requires_grad for p in embedding.parameters())
    parts = []
    for start in range(0, codes.shape[0], chunk):
        c, ln = codes[start : start + chunk], lengths[start : start + chunk]
        if record:
            parts.append(checkpoint(_embed_codes, embedding, c, ln, dtype, use_reentrant=False))
        else:
            parts.append(_embed_codes(embedding, c, ln, dtype))
    return parts[0] if len(parts) == 1 else torch.cat(parts)
