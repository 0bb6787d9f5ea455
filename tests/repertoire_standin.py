"""Small hand-made bags with an implanted motif, and a stand-in repertoire classifier that follows the model's
contract (``embed``, ``embed_onehot``, ``head``, ``forward -> (logit, weights)``), for the explanation tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from assocmem.repertoire import AMINO_ACIDS, Motif, Repertoire, encode
from assocmem.repertoire.attribution import onehot


def make_bags(
    bags: int, size: int, witnesses: int, motif: str, seed: int, positive: bool = True
) -> list[Repertoire]:
    """``bags`` bags of ``size`` uniform random sequences of 10 to 16 letters; in a positive bag ``witnesses``
    of them carry ``motif`` at a random position (its gaps filled at random)."""
    g = torch.Generator().manual_seed(seed)
    m = Motif.parse(motif)
    out = []
    for b in range(bags):
        lengths = torch.randint(10, 17, (size,), generator=g)
        letters = torch.randint(0, 20, (size, 16), generator=g)
        seqs = [
            "".join(AMINO_ACIDS[c] for c in row[:n])
            for row, n in zip(letters.tolist(), lengths.tolist(), strict=True)
        ]
        witness = torch.zeros(size, dtype=torch.bool)
        if positive:
            chosen = torch.randperm(size, generator=g)[:witnesses]
            witness[chosen] = True
            for i in chosen.tolist():
                s = list(seqs[i])
                at = int(torch.randint(0, len(s) - m.span + 1, (1,), generator=g))
                for o, ch in zip(m.offsets, m.letters, strict=True):
                    s[at + o] = ch
                seqs[i] = "".join(s)
        codes, lens = encode(seqs)
        counts = torch.randint(1, 4, (size,), generator=g)
        out.append(Repertoire(f"bag{seed}_{b}", codes, lens, counts, int(positive), witness))
    return out


@dataclass
class Output:
    logit: Tensor
    weights: Tensor | None


class StandIn(nn.Module):
    """A tiny attention-pooling classifier: a 1D convolution over one-hot letters (plus the relative position),
    tanh, mean over each sequence's positions; softmax attention of a learned query over the bag; a linear output."""

    pooling = "attention"

    def __init__(
        self, dim: int = 6, heads: int = 2, dtype: torch.dtype = torch.float64, seed: int = 0
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv1d(21, dim, 3, padding=1).to(dtype)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g, dtype=dtype) * 0.5)
        self.queries = nn.Parameter(torch.randn(heads, dim, generator=g, dtype=dtype))
        self.out = nn.Parameter(torch.randn(heads * dim, generator=g, dtype=dtype))

    def embed_onehot(self, onehot: Tensor, lengths: Tensor) -> Tensor:
        length = onehot.shape[1]
        mask = (torch.arange(length)[None, :] < lengths[:, None]).to(onehot.dtype)
        position = (torch.arange(length, dtype=onehot.dtype)[None, :] / lengths[:, None]) * mask
        h = torch.tanh(self.conv(torch.cat([onehot, position[..., None]], -1).transpose(1, 2))).transpose(
            1, 2
        )
        return (h * mask[..., None]).sum(1) / lengths[:, None].to(onehot.dtype)

    def embed(self, codes: Tensor, lengths: Tensor) -> Tensor:
        return self.embed_onehot(onehot(codes, self.out.dtype), lengths)

    def head(self, embeddings: Tensor, counts: Tensor | None = None) -> Output:
        weights = torch.softmax(self.queries @ embeddings.T * 2.0, dim=1)  # (heads, n)
        pooled = (weights @ embeddings).reshape(-1)
        return Output(pooled @ self.out, weights)

    def forward(self, bag: Repertoire) -> Output:
        return self.head(self.embed(bag.codes, bag.lengths), bag.counts)


def with_decoy(bags: list[Repertoire], decoy: str, count: int, seed: int) -> list[Repertoire]:
    """The bags with ``decoy`` written into ``count`` random non-witness sequences of each (a k-mer present in
    every bag, positive or not)."""
    g = torch.Generator().manual_seed(seed)
    m = Motif.parse(decoy)
    out = []
    for bag in bags:
        seqs = bag.sequences()
        free = (~bag.witness).nonzero().squeeze(1)
        for i in free[torch.randperm(free.numel(), generator=g)[:count]].tolist():
            s = list(seqs[i])
            for o, ch in zip(m.offsets, m.letters, strict=True):
                s[o] = ch
            seqs[i] = "".join(s)
        codes, lengths = encode(seqs)
        out.append(Repertoire(bag.name, codes, lengths, bag.counts, bag.label, bag.witness))
    return out
