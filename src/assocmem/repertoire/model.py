"""The repertoire classifier: sequence embedding, pooling of the whole bag, output network (docs/repertoire.md).

``logit = f(pool(h_1 .. h_n))`` with ``h_i`` the embedding of sequence ``i`` (:mod:`.embedding`), the pooling
attention, mean or max (:mod:`.pooling`) and ``f`` a small network (one hidden SELU layer of ``hidden`` units, or
linear with ``hidden = 0``) from the pooled ``(heads * d)`` vector to the logit of label 1. The same embedding and
output network serve the three poolings, so the baselines differ from the attention model in the pooling alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from assocmem.checks import require_tensor
from assocmem.repertoire.alphabet import check_codes
from assocmem.repertoire.bag import Repertoire
from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.embedding import LETTERS, SequenceEmbedding, embed_chunks
from assocmem.repertoire.gapped import GappedEmbedding
from assocmem.repertoire.pooling import AttentionPooling, MaxPooling, MeanPooling


@dataclass
class RepertoireOutput:
    """One bag's result: ``logit ()`` for label 1; ``weights (heads, n)``, every sequence's attention weight in
    every head (rows sum to 1; ``"mean"``: the uniform or abundance fractions, one row; ``"max"``: None)."""

    logit: Tensor
    weights: Tensor | None


class RepertoireClassifier(nn.Module):
    """Classify a bag of sequences (a :class:`~assocmem.repertoire.bag.Repertoire`) from a
    :class:`~assocmem.repertoire.config.RepertoireConfig`.

    Example::

        model = RepertoireClassifier(RepertoireConfig(pooling="attention", heads=2))
        out = model(bag)          # out.logit (), out.weights (2, bag.size)
    """

    def __init__(self, config: RepertoireConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(config, RepertoireConfig):
            raise TypeError(
                f"RepertoireClassifier: config must be a RepertoireConfig, got {type(config).__name__}"
            )
        self.config = config
        self.pooling = config.pooling
        self.chunk = config.chunk
        self.dtype = getattr(torch, config.dtype)
        if config.embedding == "gapped":
            self.embedding: nn.Module = GappedEmbedding(
                config.dim, config.span, config.letters, config.activation
            )
        else:
            self.embedding = SequenceEmbedding(config.dim, config.kernel, config.activation)
        if config.pooling == "attention":
            self.pool: nn.Module = AttentionPooling(
                config.dim,
                config.heads,
                config.inverse_temperature,
                abundance=config.abundance,
                chunk=config.chunk,
                separation=config.separation,
            )
        elif config.pooling == "mean":
            self.pool = MeanPooling(abundance=config.abundance)
        else:
            self.pool = MaxPooling()
        width = self.pool.heads * config.dim
        if config.hidden:
            self.output = nn.Sequential(
                nn.Linear(width, config.hidden), nn.SELU(), nn.Linear(config.hidden, 1)
            )
        else:
            self.output = nn.Linear(width, 1)
        self.reset_parameters(generator)
        self.to(self.dtype)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw every weight from ``generator``: N(0, 1) queries, LeCun-normal (``N(0, 1/fan_in)``) for the
        convolution and the output network (SELU's initialisation), zero biases; the gapped embedding's table
        ``N(0, 1/(23 span))`` (:meth:`.gapped.GappedEmbedding.reset_parameters`)."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("embedding.") and isinstance(self.embedding, GappedEmbedding):
                    continue
                if name.endswith("bias"):
                    p.zero_()
                elif name == "pool.queries":
                    p.copy_(torch.randn(p.shape, generator=generator))
                else:
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=generator) / fan_in**0.5)
            if isinstance(self.embedding, GappedEmbedding):
                self.embedding.reset_parameters(generator)

    def _check(self, codes: object, lengths: object, counts: object, who: str) -> None:
        codes, lengths = check_codes(codes, lengths, who)
        if codes.shape[0] == 0:
            raise ValueError(f"{who}: codes is empty; a bag holds at least one sequence")
        self._check_counts(counts, codes.shape[0], who)

    @staticmethod
    def _check_counts(counts: object, n: int, who: str) -> None:
        if counts is None:
            return
        counts = require_tensor(counts, "counts", who, floating=False)
        if counts.dtype != torch.int64 or counts.shape != (n,):
            raise ValueError(f"{who}: counts must be int64 ({n},), got {counts.dtype} {tuple(counts.shape)}")
        if int(counts.min()) < 1:
            raise ValueError(f"{who}: counts must be >= 1 (clonal abundance), got {int(counts.min())}")

    def embed(self, codes: Tensor, lengths: Tensor) -> Tensor:
        """Sequence embeddings ``(n, dim)`` of coded sequences (uint8 ``(n, L)``, ``PAD`` after each end), computed
        ``chunk`` sequences at a time (recomputed in the backward pass, so memory holds one chunk's activations)."""
        self._check(codes, lengths, None, "RepertoireClassifier.embed")
        return embed_chunks(self.embedding, codes, lengths, self.chunk, self.dtype)

    def embed_onehot(self, onehot: Tensor, lengths: Tensor) -> Tensor:
        """Sequence embeddings ``(n, dim)`` of one-hot sequences ``(n, L, 20)`` (rows past each end zero; any real
        values along a path, for integrated gradients): differentiable with respect to ``onehot``."""
        who = "RepertoireClassifier.embed_onehot"
        if not isinstance(self.embedding, SequenceEmbedding):
            raise ValueError(
                f"{who}: the {self.config.embedding!r} embedding reads letter codes, not one-hot rows; integrated "
                "gradients need embedding 'conv'"
            )
        onehot = require_tensor(onehot, "onehot", who)
        lengths = require_tensor(lengths, "lengths", who, floating=False)
        if onehot.dim() != 3 or onehot.shape[-1] != LETTERS or onehot.shape[0] == 0 or onehot.shape[1] == 0:
            raise ValueError(
                f"{who}: onehot must be (n, L, {LETTERS}) with n, L > 0, got {tuple(onehot.shape)}"
            )
        if onehot.dtype != self.dtype:
            raise TypeError(f"{who}: onehot must be {self.dtype} (the model's dtype), got {onehot.dtype}")
        if (
            lengths.dtype != torch.int64
            or lengths.shape != onehot.shape[:1]
            or lengths.is_meta
            or onehot.is_meta
        ):
            raise ValueError(
                f"{who}: lengths must be int64 ({onehot.shape[0]},), got {lengths.dtype} {tuple(lengths.shape)}"
            )
        if int(lengths.min()) < 1 or int(lengths.max()) > onehot.shape[1]:
            raise ValueError(f"{who}: lengths must be in [1, {onehot.shape[1]}]")
        if not bool(torch.isfinite(onehot).all()):
            raise ValueError(f"{who}: onehot holds NaN or Inf")
        return self.embedding(onehot, lengths)

    def head(self, embeddings: Tensor, counts: Tensor | None = None) -> RepertoireOutput:
        """Pool the embeddings ``(n, dim)`` of a bag (with its counts ``(n,)`` for abundance) and apply the output
        network."""
        who = "RepertoireClassifier.head"
        embeddings = require_tensor(embeddings, "embeddings", who)
        if embeddings.dim() != 2 or embeddings.shape[0] == 0 or embeddings.shape[1] != self.config.dim:
            raise ValueError(
                f"{who}: embeddings must be (n, {self.config.dim}) with n > 0, got {tuple(embeddings.shape)}"
            )
        if embeddings.dtype != self.dtype:
            raise TypeError(
                f"{who}: embeddings must be {self.dtype} (the model's dtype), got {embeddings.dtype}"
            )
        if not bool(torch.isfinite(embeddings).all()):
            raise ValueError(f"{who}: embeddings hold NaN or Inf")
        self._check_counts(counts, embeddings.shape[0], who)
        return self._head(embeddings, counts)

    def _head(self, embeddings: Tensor, counts: Tensor | None) -> RepertoireOutput:
        pooled, weights = self.pool(embeddings, counts)
        return RepertoireOutput(self.output(pooled.reshape(-1)).squeeze(-1), weights)

    def classify(self, codes: Tensor, lengths: Tensor, counts: Tensor | None = None) -> RepertoireOutput:
        """The output for a bag given as tensors (codes, lengths, counts)."""
        self._check(codes, lengths, counts, "RepertoireClassifier.classify")
        return self._head(embed_chunks(self.embedding, codes, lengths, self.chunk, self.dtype), counts)

    def forward(self, bag: Repertoire) -> RepertoireOutput:
        """The output for one bag."""
        if not isinstance(bag, Repertoire):
            raise TypeError(f"RepertoireClassifier: bag must be a Repertoire, got {type(bag).__name__}")
        return self.classify(bag.codes, bag.lengths, bag.counts)
