"""The projections into and out of the Hopfield space around the update of :mod:`assocmem.nn.functional`.

State patterns ``R``, stored patterns ``Y`` and pattern projections are projected per head,
``Q = R W_Q``, ``K = Y W_K``, ``V = Y_v W_V`` (each projection can be skipped: "static"), optionally
layer-normalised per head in the Hopfield space, extended by a learned bias pattern and a zero pattern, updated by
Model B, and projected out, ``Z W_O``. Parameter names follow hflayers' ``HopfieldCore`` (and
``torch.nn.MultiheadAttention``) so that state dicts load unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from assocmem.checks import guard, nonfinite_error
from assocmem.engines.association import hidden_rows
from assocmem.nn.arguments import OVERFLOW, hidden_row_error
from assocmem.nn.functional import Association, merge_masks, update


class AssociationCore(nn.Module):
    """Per-head projections, Hopfield-space normalisation and the output projection of a Hopfield layer.

    Built by :class:`assocmem.nn.Hopfield` (where every option is documented); not usually made directly.
    """

    def __init__(
        self,
        *,
        embed_dim: int | None,
        num_heads: int,
        dropout: float,
        bias: bool,
        add_bias_kv: bool,
        add_zero_attn: bool,
        kdim: int | None,
        vdim: int | None,
        head_dim: int | None,
        pattern_dim: int | None,
        out_dim: int | None,
        disable_out_projection: bool,
        key_as_static: bool,
        query_as_static: bool,
        value_as_static: bool,
        value_as_connected: bool,
        normalize_pattern: bool,
        normalize_pattern_affine: bool,
        normalize_pattern_eps: float,
    ) -> None:
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads must be >= 1, got {num_heads}")
        if normalize_pattern_affine and not normalize_pattern:
            raise ValueError("normalize_hopfield_space_affine needs normalize_hopfield_space=True")
        self.num_heads, self.dropout = num_heads, float(dropout)
        self.key_as_static, self.query_as_static, self.value_as_static = (
            key_as_static,
            query_as_static,
            value_as_static,
        )
        self.value_as_connected = value_as_connected
        self.disable_out_projection = disable_out_projection
        self.normalize_pattern, self.normalize_pattern_eps = normalize_pattern, normalize_pattern_eps
        self.add_zero_attn = add_zero_attn
        self.static_execution = all(
            (key_as_static, query_as_static, value_as_static, disable_out_projection)
        ) and not (value_as_connected or normalize_pattern)
        if self.static_execution:
            embed_dim = kdim = vdim = None
        elif embed_dim is None:
            raise ValueError(
                "input_size is needed unless every projection is static and the output projection off"
            )
        self.embed_dim = embed_dim
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        if value_as_connected and self.kdim != self.vdim:
            raise ValueError(
                f"pattern_projection_as_connected needs stored_pattern_size == pattern_projection_size, "
                f"got {self.kdim} and {self.vdim}"
            )
        self.head_dim = self.pattern_dim = None
        if not self.static_execution:
            if head_dim is None:
                if embed_dim % num_heads:
                    raise ValueError(f"input_size {embed_dim} must be divisible by num_heads {num_heads}")
                head_dim = embed_dim // num_heads
            if head_dim <= 0:
                raise ValueError(f"hidden_size must be positive, got {head_dim}")
            self.head_dim = head_dim
            self.pattern_dim = head_dim if pattern_dim is None else pattern_dim
            if value_as_static and not value_as_connected:  # each head reads the raw pattern projection
                if pattern_dim not in (None, self.vdim):
                    raise ValueError(
                        f"a static pattern projection has width pattern_projection_size = {self.vdim} per head; "
                        f"pattern_size {pattern_dim} must equal it (or be left None)"
                    )
                self.pattern_dim = self.vdim
            if value_as_connected and self.pattern_dim != head_dim:
                raise ValueError("pattern_projection_as_connected needs pattern_size == hidden_size")
        hop = None if self.head_dim is None else num_heads * self.head_dim
        pat = None if self.pattern_dim is None else num_heads * self.pattern_dim
        self.out_dim = embed_dim if out_dim is None else out_dim
        self._hop, self._pat = hop, pat
        self._packed = self.kdim == embed_dim and self.vdim == embed_dim and pattern_dim is None
        self._packed = self._packed and not value_as_connected
        projected = [not query_as_static, not key_as_static, not value_as_static]

        if normalize_pattern_affine:
            self.p_norm_weight = nn.Parameter(torch.ones(self.head_dim))
            self.p_norm_bias = nn.Parameter(torch.zeros(self.head_dim))
        else:
            self.register_parameter("p_norm_weight", None)
            self.register_parameter("p_norm_bias", None)
        for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
            self.register_parameter(name, None)
        if self._packed and any(projected):
            rows = projected[0] * hop + projected[1] * hop + projected[2] * pat
            self.in_proj_weight = nn.Parameter(torch.empty(rows, embed_dim))
        elif not self._packed:
            if projected[0]:
                self.q_proj_weight = nn.Parameter(torch.empty(hop, embed_dim))
            if projected[1]:
                self.k_proj_weight = nn.Parameter(torch.empty(hop, self.kdim))
            if projected[2]:
                width = hop if (value_as_connected and not key_as_static) else self.vdim
                self.v_proj_weight = nn.Parameter(torch.empty(pat, width))
        if bias and any(projected):
            self.in_proj_bias = nn.Parameter(torch.empty(projected[0] * hop + projected[1] * hop + pat))
        else:
            self.register_parameter("in_proj_bias", None)
        if disable_out_projection:
            self.register_parameter("out_proj", None)
        else:
            if self.out_dim is None or self.out_dim <= 0:
                raise ValueError(f"output_size must be positive, got {self.out_dim}")
            self.out_proj = nn.Linear(pat, self.out_dim, bias=bias)
        self.bias_k = self.bias_v = None
        if add_bias_kv:
            if key_as_static and value_as_static:
                raise ValueError("concat_bias_pattern needs a projected stored pattern or pattern projection")
            if not key_as_static:
                self.bias_k = nn.Parameter(torch.empty(1, 1, hop))
            if not value_as_static:
                self.bias_v = nn.Parameter(torch.empty(1, 1, pat))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 0.02) projections and bias patterns, zero biases, unit Hopfield-space normalisation."""
        for p in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if p is not None:
                nn.init.normal_(p, mean=0.0, std=0.02)
        for p in (self.bias_k, self.bias_v):
            if p is not None:
                nn.init.normal_(p, mean=0.0, std=0.02)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
        if self.out_proj is not None:
            nn.init.normal_(self.out_proj.weight, mean=0.0, std=0.02)
            if self.out_proj.bias is not None:
                nn.init.zeros_(self.out_proj.bias)
        if self.p_norm_weight is not None:
            nn.init.ones_(self.p_norm_weight)
            nn.init.zeros_(self.p_norm_bias)

    def _weights(
        self,
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
        """(W_Q, b_Q, W_K, b_K, W_V, b_V), sliced from the packed or the separate parameters."""
        hop, pat = self._hop, self._pat
        spans, start = [], 0
        for static, size in (
            (self.query_as_static, hop),
            (self.key_as_static, hop),
            (self.value_as_static, pat),
        ):
            spans.append(None if static else (start, start + size))
            start += 0 if static else size
        packed = self.in_proj_weight
        ws = [None if s is None else (packed[s[0] : s[1]] if packed is not None else None) for s in spans]
        if packed is None:
            ws = [self.q_proj_weight, self.k_proj_weight, self.v_proj_weight]
        b = self.in_proj_bias
        bq = None if b is None or spans[0] is None else b[spans[0][0] : spans[0][1]]
        bk = None if b is None or spans[1] is None else b[spans[1][0] : spans[1][1]]
        bv = None if b is None else b[b.shape[0] - pat :]
        return ws[0], bq, ws[1], bk, ws[2], bv

    def _split(self, x: Tensor) -> Tensor:
        """``(B, N, H * w)`` -> ``(B, H, N, w)``."""
        return x.view(x.shape[0], x.shape[1], self.num_heads, x.shape[-1] // self.num_heads).transpose(1, 2)

    def project(self, state: Tensor, stored: Tensor, projection: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Q, K, V per head, ``(B, H, L, d_k)``, ``(B', H', S', d_k)``, ``(B', H', S', d_v)`` (``S'`` counts the bias
        and zero patterns); the inputs are batch-first ``(B, L, *)`` and ``(B', S, *)``. Stored patterns given once
        for the whole batch (``B' = 1``) stay so, and a static input read by every head is one pattern matrix
        shared by the heads (``H' = 1``): the update reads them in place (no copy per head, item or step)."""
        wq, bq, wk, bk, wv, bv = self._weights()
        h = self.num_heads
        q = (
            state.unsqueeze(1).expand(-1, h, -1, -1)
            if self.query_as_static
            else self._split(F.linear(state, wq, bq))
        )
        k = stored.unsqueeze(1) if self.key_as_static else self._split(F.linear(stored, wk, bk))
        connected = self.value_as_connected and not self.key_as_static
        v = F.linear(projection, self.k_proj_weight, bk) if connected else projection
        if not self.value_as_static:
            v = self._split(F.linear(v, wv, bv))
        elif connected:
            v = self._split(v)
        else:
            v = v.unsqueeze(1)
        if q.shape[-1] != k.shape[-1]:
            raise ValueError(
                f"Hopfield: the state pattern and the stored pattern reach the Hopfield space with {q.shape[-1]} and "
                f"{k.shape[-1]} features per head; they must match (a static input's width is its per-head width)"
            )
        if self.normalize_pattern:
            d = q.shape[-1]
            q = F.layer_norm(q, (d,), self.p_norm_weight, self.p_norm_bias, self.normalize_pattern_eps)
            k = F.layer_norm(k, (d,), self.p_norm_weight, self.p_norm_bias, self.normalize_pattern_eps)
        if self.bias_k is not None:  # the bias pattern is a learned extra stored pattern (and projection)
            k = torch.cat(
                [k.expand(-1, h, -1, -1), self._split(self.bias_k.expand(k.shape[0], 1, -1))], dim=2
            )
        if self.bias_v is not None:
            v = torch.cat(
                [v.expand(-1, h, -1, -1), self._split(self.bias_v.expand(v.shape[0], 1, -1))], dim=2
            )
        if (k.shape[1] == 1) != (v.shape[1] == 1):  # one shared by the heads, the other not: both per head
            k, v = k.expand(-1, h, -1, -1), v.expand(-1, h, -1, -1)
        # once per forward, each head's patterns side by side for the products (a no-op for one head or a shared one)
        k, v = k.contiguous(), v.contiguous()
        if self.add_zero_attn:
            k = F.pad(k, (0, 0, 0, 1))
            v = F.pad(v, (0, 0, 0, 1))
        return q, k, v

    def forward(
        self,
        state: Tensor,
        stored: Tensor,
        projection: Tensor,
        *,
        scaling: float | Tensor,
        update_steps_max: int | Tensor | None,
        update_steps_eps: float | Tensor,
        stop_on: str = "association",
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
        record: bool = False,
        full: bool = True,
    ) -> tuple[Tensor, Association]:
        """Project, update, project out. Returns the output ``(B, L, out)`` and the :class:`Association` (without
        the association matrix and the step counts when not ``full``)."""
        q, k, v = self.project(state, stored, projection)
        mask = self.mask(q, k, stored.shape[1], stored_pattern_padding_mask, association_mask)
        with guard() as g:
            if g is not None and mask is not None:
                g.defer(hidden_rows(mask), lambda: hidden_row_error(mask))
            assoc = update(
                q, k, v, scaling, mask=mask, max_steps=update_steps_max, tol=update_steps_eps, stop_on=stop_on,
                dropout=self.dropout, training=self.training, record=record, full=full,
            )  # fmt: skip
            batch, _, length, _ = q.shape
            out = assoc.output.transpose(1, 2).reshape(
                batch, length, assoc.output.shape[1] * assoc.output.shape[3]
            )
            if self.out_proj is not None:
                out = self.out_proj(out)
            if g is not None:
                suspects = [
                    ("state_pattern", state), ("stored_pattern", stored), ("pattern_projection", projection),
                    ("stored_pattern_padding_mask", stored_pattern_padding_mask),
                    ("association_mask", association_mask), ("scaling", scaling), ("layer's parameters", self),
                ]  # fmt: skip
                g.result(out, lambda: nonfinite_error("Hopfield", suspects, OVERFLOW))
        return out, assoc

    def mask(
        self,
        q: Tensor,
        k: Tensor,
        source: int,
        stored_pattern_padding_mask: Tensor | None,
        association_mask: Tensor | None,
    ) -> Tensor | None:
        """The additive mask ``(B|1, H|1, L, S')`` of the projected ``q``, ``k`` (``source``: the stored patterns
        given, before the bias and zero patterns, which are never hidden)."""
        batch, _, length, _ = q.shape
        mask = merge_masks(
            stored_pattern_padding_mask,
            association_mask,
            batch,
            self.num_heads,
            length,
            source,
            q,
        )
        extra = k.shape[2] - source
        if mask is not None and extra:
            mask = F.pad(mask, (0, extra))
        return mask
