"""``Hopfield``: the modern Hopfield network as a deep-learning layer (docs/reference.md §2, model B).

In the paper's terms (Ramsauer et al. 2020, "Hopfield Networks is All You Need"): the *state patterns* ``R``
(the queries ``Q = R W_Q``) are the initial states ``x`` of Model B, the *stored patterns* ``Y`` (the keys
``K = Y W_K``) are the memories ``xi``, ``beta`` (``scaling``) is the inverse temperature, and the *pattern
projections* (the values ``V``) are what the association ``softmax(beta Q K^T)`` reads out. One update is
attention; more updates run Model B's dynamics, each lowering the energy
``E(q) = 1/2 |q|^2 - beta^-1 log sum_s exp(beta q . k_s)``. See docs/hopfield-layers.md.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor, nn

from assocmem.checks import guard, require_like
from assocmem.engines.association import associate, hidden_rows, model_b_energy
from assocmem.nn.arguments import check_options, check_sequence, first_tensor, hidden_row_error, run_checked
from assocmem.nn.functional import Association
from assocmem.nn.projections import AssociationCore

Inputs = Tensor | tuple[Tensor, Tensor, Tensor]


def _norm(enabled: bool, affine: bool, size: int | None, eps: float, what: str) -> nn.LayerNorm | None:
    if affine and not enabled:
        raise ValueError(f"normalize_{what}_affine needs normalize_{what}=True")
    if not enabled:
        return None
    if size is None:
        raise ValueError(
            f"normalize_{what} needs the size of that input (input_size / stored_pattern_size / ...)"
        )
    return nn.LayerNorm(size, eps=eps, elementwise_affine=affine)


class Hopfield(nn.Module):
    """A Hopfield association layer: ``Z = softmax(beta Q K^T) V`` iterated on ``Q`` (docs/reference.md §2).

    ``forward(input)`` takes one tensor (used as stored pattern, state pattern and pattern projection: a
    Hopfield self-association) or a tuple ``(stored_pattern, state_pattern, pattern_projection)``, each
    ``(B, N, size)`` (``(N, B, size)`` when ``batch_first=False``).

    Options (names and meanings as in hflayers, whose state dicts load into this layer):

    - sizes: ``input_size`` (state pattern width), ``stored_pattern_size``, ``pattern_projection_size``
      (default ``input_size``), ``hidden_size`` (per-head width of the Hopfield space, default
      ``input_size // num_heads``), ``pattern_size`` (per-head width of the projected values, default
      ``hidden_size``), ``output_size`` (default ``input_size``), ``num_heads``;
    - ``scaling``: beta, a float or a ``(num_heads,)`` tensor (default ``1/sqrt(hidden_size)``; 1 when nothing
      is projected);
    - ``update_steps_max``: extra updates after the first association: an int, a ``(num_heads,)`` tensor, or
      ``None`` (until ``update_steps_eps``); ``update_steps_eps``: a float or per-head tensor; a head stops when
      the change of its association matrix (``update_steps_stop_on="association"``) or of its state patterns
      (``"state"``) is at most eps;
    - ``normalize_{stored_pattern,state_pattern,pattern_projection,hopfield_space}`` with ``_affine`` and
      ``_eps``: LayerNorm on each input and, per head, on Q and K in the Hopfield space;
    - ``{stored_pattern,state_pattern,pattern_projection}_as_static``: skip that projection (use the input
      as is); ``pattern_projection_as_connected``: project the values through ``W_K`` first;
    - ``association_activation``: the name of a torch function applied to the output (e.g. ``"tanh"``);
      ``dropout`` on the association matrix; ``input_bias`` (biases of the projections);
      ``concat_bias_pattern`` (a learned extra stored pattern and projection, appended; hflayers' version
      never appended it); ``add_zero_association`` (an extra all-zero stored pattern);
      ``disable_out_projection``; ``batch_first``.
    """

    def __init__(
        self,
        input_size: int | None = None,
        hidden_size: int | None = None,
        output_size: int | None = None,
        pattern_size: int | None = None,
        num_heads: int = 1,
        scaling: float | Tensor | None = None,
        update_steps_max: int | Tensor | None = 0,
        update_steps_eps: float | Tensor = 1e-4,
        normalize_stored_pattern: bool = True,
        normalize_stored_pattern_affine: bool = True,
        normalize_stored_pattern_eps: float = 1e-5,
        normalize_state_pattern: bool = True,
        normalize_state_pattern_affine: bool = True,
        normalize_state_pattern_eps: float = 1e-5,
        normalize_pattern_projection: bool = True,
        normalize_pattern_projection_affine: bool = True,
        normalize_pattern_projection_eps: float = 1e-5,
        normalize_hopfield_space: bool = False,
        normalize_hopfield_space_affine: bool = False,
        normalize_hopfield_space_eps: float = 1e-5,
        stored_pattern_as_static: bool = False,
        state_pattern_as_static: bool = False,
        pattern_projection_as_static: bool = False,
        pattern_projection_as_connected: bool = False,
        stored_pattern_size: int | None = None,
        pattern_projection_size: int | None = None,
        batch_first: bool = True,
        association_activation: str | None = None,
        dropout: float = 0.0,
        input_bias: bool = True,
        concat_bias_pattern: bool = False,
        add_zero_association: bool = False,
        disable_out_projection: bool = False,
        update_steps_stop_on: str = "association",
    ) -> None:
        super().__init__()
        check_options(locals())
        self.association_core = AssociationCore(
            embed_dim=input_size, num_heads=num_heads, dropout=dropout, bias=input_bias,
            add_bias_kv=concat_bias_pattern, add_zero_attn=add_zero_association, kdim=stored_pattern_size,
            vdim=pattern_projection_size, head_dim=hidden_size, pattern_dim=pattern_size, out_dim=output_size,
            disable_out_projection=disable_out_projection, key_as_static=stored_pattern_as_static,
            query_as_static=state_pattern_as_static, value_as_static=pattern_projection_as_static,
            value_as_connected=pattern_projection_as_connected, normalize_pattern=normalize_hopfield_space,
            normalize_pattern_affine=normalize_hopfield_space_affine,
            normalize_pattern_eps=normalize_hopfield_space_eps,
        )  # fmt: skip
        stored = input_size if stored_pattern_size is None else stored_pattern_size
        proj = input_size if pattern_projection_size is None else pattern_projection_size
        self.norm_stored_pattern = _norm(
            normalize_stored_pattern, normalize_stored_pattern_affine, stored, normalize_stored_pattern_eps,
            "stored_pattern",
        )  # fmt: skip
        self.norm_state_pattern = _norm(
            normalize_state_pattern, normalize_state_pattern_affine, input_size, normalize_state_pattern_eps,
            "state_pattern",
        )  # fmt: skip
        self.norm_pattern_projection = _norm(
            normalize_pattern_projection, normalize_pattern_projection_affine, proj,
            normalize_pattern_projection_eps, "pattern_projection",
        )  # fmt: skip
        self.association_activation = None
        if association_activation is not None:
            self.association_activation = getattr(torch, association_activation, None)
            if not callable(self.association_activation):
                raise ValueError(f"association_activation {association_activation!r} is not a torch function")
        core = self.association_core
        if scaling is None:
            scaling = 1.0 if core.static_execution else 1.0 / math.sqrt(core.head_dim)
        self.scaling, self.batch_first = scaling, batch_first
        self.update_steps_max, self.update_steps_eps = update_steps_max, update_steps_eps
        self.update_steps_stop_on = update_steps_stop_on
        self._activation_name = association_activation

    def reset_parameters(self) -> None:
        """Reset the projections and the input normalisations."""
        for m in (
            self.association_core,
            self.norm_stored_pattern,
            self.norm_state_pattern,
            self.norm_pattern_projection,
        ):
            if m is not None:
                m.reset_parameters()

    @property
    def num_heads(self) -> int:
        return self.association_core.num_heads

    @property
    def input_size(self) -> int | None:
        return self.association_core.embed_dim

    @property
    def state_pattern_dim(self) -> int | None:
        return self.association_core.embed_dim

    @property
    def hidden_size(self) -> int | None:
        return self.association_core.head_dim

    @property
    def output_size(self) -> int | None:
        return self.association_core.out_dim

    def _widths(self) -> tuple[int | None, int | None, int | None]:
        """The feature widths the layer takes for (stored, state, projection): its normalisation's or its
        projection's, or for a static input without normalisation its per-head width (``None``: any)."""
        core = self.association_core
        connected = core.value_as_connected and not core.key_as_static
        own = (
            core.head_dim if core.key_as_static else core.kdim,
            core.head_dim if core.query_as_static else core.embed_dim,
            core.kdim if connected else core.vdim,
        )
        norms = (self.norm_stored_pattern, self.norm_state_pattern, self.norm_pattern_projection)
        return tuple(n.normalized_shape[0] if n is not None else w for n, w in zip(norms, own, strict=True))

    def _inputs(self, input: Inputs, who: str = "Hopfield") -> tuple[Tensor, Tensor, Tensor]:
        """Check, split, make batch-first and normalise (stored, state, projection)."""
        if isinstance(input, Tensor):
            tensors, names = (input,) * 3, ("input",) * 3
        elif isinstance(input, (tuple, list)) and len(input) == 3:
            tensors, names = tuple(input), ("stored_pattern", "state_pattern", "pattern_projection")
        else:
            raise TypeError(
                f"{who}: input must be one tensor or a tuple (stored_pattern, state_pattern, pattern_projection), "
                f"got {type(input).__name__}"
            )
        like = first_tensor(self)
        stored, state, projection = (
            check_sequence(t, name, who, width, like)
            for t, name, width in zip(tensors, names, self._widths(), strict=True)
        )
        if like is None:
            for t, name in ((stored, names[0]), (projection, names[2])):
                require_like(t, name, state, names[1], who)
        if not self.batch_first:
            stored, state, projection = (t.transpose(0, 1) for t in (stored, state, projection))
        if stored.shape[0] != state.shape[0] or projection.shape[:2] != stored.shape[:2]:
            raise ValueError(
                f"{who}: stored_pattern {tuple(stored.shape)}, state_pattern {tuple(state.shape)} and "
                f"pattern_projection {tuple(projection.shape)} must share the batch size; stored_pattern and "
                f"pattern_projection the length"
            )
        if stored.shape[1] == 0:
            raise ValueError(
                f"{who}: {names[0]} holds no pattern (length 0): there is nothing to associate with"
            )
        # inputs given once for the whole batch (an expanded tensor: stride 0) are normalised, projected and read
        # once: the batch shares them (HopfieldLayer's stored patterns)
        stored, projection = (
            t[:1] if t.shape[0] > 1 and t.stride(0) == 0 else t for t in (stored, projection)
        )
        return self._normalised(stored, state, projection)

    def _normalised(self, stored: Tensor, state: Tensor, projection: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The layer's input norms applied (those it has)."""
        if self.norm_stored_pattern is not None:
            stored = self.norm_stored_pattern(stored)
        if self.norm_state_pattern is not None:
            state = self.norm_state_pattern(state)
        if self.norm_pattern_projection is not None:
            projection = self.norm_pattern_projection(projection)
        return stored, state, projection

    def _suspects(self, input: Inputs, *masks: Tensor | None) -> list[tuple[str, object]]:
        """What to blame, in order, when a result is not finite: the inputs, the masks, scaling, the parameters."""
        names = ("stored_pattern", "state_pattern", "pattern_projection")
        given = [("input", input)] if isinstance(input, Tensor) else list(zip(names, input, strict=False))
        named = zip(("stored_pattern_padding_mask", "association_mask"), masks, strict=True)
        return [*given, *named, ("scaling", self.scaling), ("layer's parameters", self)]

    def associate(
        self,
        input: Inputs,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
        *,
        record: bool = False,
        full: bool = True,
    ) -> tuple[Tensor, Association]:
        """The output (in the caller's layout) and the :class:`~assocmem.nn.functional.Association` (``full``:
        with the association matrix and the step counts)."""
        stored, state, projection = self._inputs(input)

        def call() -> tuple[Tensor, Association]:
            out, assoc = self.association_core(
                state, stored, projection, scaling=self.scaling, update_steps_max=self.update_steps_max,
                update_steps_eps=self.update_steps_eps, stop_on=self.update_steps_stop_on,
                stored_pattern_padding_mask=stored_pattern_padding_mask, association_mask=association_mask,
                record=record, full=full,
            )  # fmt: skip
            if self.association_activation is not None:
                out = self.association_activation(out)
            return (out if self.batch_first else out.transpose(0, 1)), assoc

        suspects = self._suspects(input, stored_pattern_padding_mask, association_mask)
        return run_checked("Hopfield", suspects, call, lambda r: r[0])

    def forward(
        self,
        input: Inputs,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Tensor:
        """Hopfield association of ``input`` (see the class docstring); masks: ``True`` (or ``-inf``) hides."""
        return self.associate(input, stored_pattern_padding_mask, association_mask, full=False)[0]

    def retrieve(
        self,
        input: Inputs,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Association:
        """One call: the layer's output (in ``output``), the final association matrix, the final states and the
        energy at every update (``energies``: ``(T, B, H, L)``, non-increasing; Model B's energy in the Hopfield
        space). A new result: the :class:`Association` of :meth:`associate` is left as it is."""
        out, assoc = self.associate(input, stored_pattern_padding_mask, association_mask, record=True)
        return replace(assoc, output=out)

    def energy(
        self,
        input: Inputs,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Tensor:
        """Model B's energy ``E(q) = 1/2 |q|^2 - beta^-1 log sum_s exp(beta q . k_s)`` of the state patterns in
        the Hopfield space (before any update), per head: ``(B, H, L)`` (docs/reference.md §2). Computes that
        energy only: one association's log-partition, no update and no output."""
        stored, state, projection = self._inputs(input)
        core = self.association_core

        def call() -> Tensor:
            q, k, _ = core.project(state, stored, projection)
            mask = core.mask(q, k, stored.shape[1], stored_pattern_padding_mask, association_mask)
            with guard() as g:
                if g is not None and mask is not None:
                    g.defer(hidden_rows(mask), lambda: hidden_row_error(mask))
            beta = self.scaling
            if isinstance(beta, Tensor):
                beta = beta.to(q).view(1, -1, 1, 1)
            _, lse, _ = associate(q, k, k[..., :1], beta, mask, need_lse=True)  # k may be shared: no copy
            return model_b_energy(q, lse, beta)

        suspects = self._suspects(input, stored_pattern_padding_mask, association_mask)
        return run_checked("Hopfield", suspects, call, lambda e: e)

    def association_matrix(
        self,
        input: Inputs,
        stored_pattern_padding_mask: Tensor | None = None,
        association_mask: Tensor | None = None,
    ) -> Tensor:
        """The final association matrix ``softmax(beta Q K^T + M)``, ``(B, H, L, S)`` (hflayers'
        ``get_association_matrix``)."""
        return self.associate(input, stored_pattern_padding_mask, association_mask)[1].association

    get_association_matrix = association_matrix

    def extra_repr(self) -> str:
        c = self.association_core
        return (
            f"input_size={c.embed_dim}, hidden_size={c.head_dim}, num_heads={c.num_heads}, scaling={self.scaling}, "
            f"update_steps_max={self.update_steps_max}, update_steps_eps={self.update_steps_eps}, "
            f"batch_first={self.batch_first}, association_activation={self._activation_name}"
        )
