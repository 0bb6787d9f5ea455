"""Masks (docs/bad-input.md, "Masks"): ``retrieve`` and ``hopfield_update`` follow PyTorch's attention convention
(a boolean ``True`` takes part, as in ``scaled_dot_product_attention``), the layers keep hflayers' and
``torch.nn.MultiheadAttention``'s (``True`` hides); float masks are added to the scores in both. A mask that hides
every pattern from a query, or has the wrong shape, is an error naming it, on every code path."""

import pytest
import torch

import assocmem as am
from assocmem.engines import association
from assocmem.nn import Hopfield, HopfieldEncoderLayer
from assocmem.nn.functional import hopfield_update

F64 = torch.float64
STATIC = dict(normalize_stored_pattern=False, normalize_stored_pattern_affine=False, normalize_state_pattern=False,
              normalize_state_pattern_affine=False, normalize_pattern_projection=False,
              normalize_pattern_projection_affine=False, stored_pattern_as_static=True, state_pattern_as_static=True,
              pattern_projection_as_static=True, disable_out_projection=True)  # fmt: skip

#: Every code path of retrieve: keyword arguments, and whether to force the fused kernel (CUDA's) on the CPU.
PATHS = {
    "plain": ({}, False),
    "fused": ({}, True),
    "weights": ({"return_weights": True}, False),
    "chunked": ({"chunk_size": 4}, False),
    "chunked_record": ({"chunk_size": 4, "record": True}, False),
    "several_steps": ({"steps": 3}, False),
    "several_steps_fused": ({"steps": 3}, True),
    "until_converged": ({"steps": None, "tol": 1e-9}, False),
    "values": ({"values": "v", "steps": 2}, False),
    "values_chunked": ({"values": "v", "steps": 2, "chunk_size": 3}, False),
}


def _run(monkeypatch, path, memory, queries, mask, values=None, beta=4.0):
    kwargs, fused = PATHS[path]
    if fused:
        monkeypatch.setattr(association, "SDPA_DEVICES", {"cpu"})
    kwargs = dict(kwargs)
    if kwargs.get("values") == "v":
        kwargs["values"] = values
    out = am.retrieve(memory, queries, beta, mask=mask, **kwargs)
    return out if isinstance(out, torch.Tensor) else out.states


@pytest.mark.parametrize("path", list(PATHS))
def test_a_boolean_mask_hides_the_false_patterns_on_every_path(monkeypatch, path):
    """The issue's case: keep[3] = False, query M[3]; the answer is the retrieval from M without row 3."""
    torch.manual_seed(0)
    memory, values = torch.randn(50, 16, dtype=F64), torch.randn(50, 5, dtype=F64)
    keep = torch.ones(50, dtype=torch.bool)
    keep[3] = False
    queries = memory[[3, 7]]
    out = _run(monkeypatch, path, memory, queries, keep, values)
    expected = _run(monkeypatch, path, memory[keep], queries, None, values[keep])
    torch.testing.assert_close(out, expected)
    if PATHS[path][0].get("values") is None:
        assert (out[0] - memory[3]).norm() > 1.0  # the hidden memory is never returned
    # a float mask with -inf where the boolean one is False is the same mask
    additive = torch.zeros(50, dtype=F64).masked_fill(~keep, float("-inf"))
    torch.testing.assert_close(_run(monkeypatch, path, memory, queries, additive, values), out)


def test_the_weights_of_a_hidden_pattern_are_zero_and_per_query_masks_apply_per_query():
    memory = torch.randn(10, 4, dtype=F64)
    keep = torch.ones(2, 10, dtype=torch.bool)
    keep[0, 3] = keep[1, 5] = False
    res = am.retrieve(memory, memory[[3, 5]], 2.0, mask=keep, return_weights=True)
    assert res.weights[0, 3] == 0 and res.weights[1, 5] == 0 and res.weights[0, 5] > 0
    # per-item memories (B, K, d) with a mask per item
    per_item = torch.randn(2, 10, 4, dtype=F64)
    out = am.retrieve(per_item, per_item[:, 3], 2.0, mask=keep)
    for b in range(2):
        torch.testing.assert_close(out[b], am.retrieve(per_item[b][keep[b]], per_item[b, 3:4], 2.0)[0])


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_a_row_that_hides_every_pattern_is_an_error_on_every_path(monkeypatch, path, kind):
    memory, values = torch.randn(12, 4, dtype=F64), torch.randn(12, 2, dtype=F64)
    keep = torch.ones(3, 12, dtype=torch.bool)
    keep[1] = False
    mask = keep if kind == "bool" else torch.zeros(3, 12, dtype=F64).masked_fill(~keep, float("-inf"))
    with pytest.raises(ValueError, match=r"mask hides every pattern from the row \(1,\)"):
        _run(monkeypatch, path, memory, memory[:3], mask, values)


def test_a_mask_of_the_wrong_shape_or_kind_is_an_error_naming_it():
    memory = torch.randn(50, 4)
    with pytest.raises(
        ValueError, match=r"mask must broadcast to the scores' shape .* = \(2, 50\), got \(3, 50\)"
    ):
        am.retrieve(memory, memory[:2], mask=torch.ones(3, 50, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask must broadcast .*got \(49,\)"):
        am.retrieve(memory, memory[:2], mask=torch.ones(49, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be boolean"):
        am.retrieve(memory, memory[:2], mask=torch.ones(50, dtype=torch.uint8))
    with pytest.raises(TypeError, match="mask must have the queries' dtype"):
        am.retrieve(memory, memory[:2], mask=torch.zeros(50, dtype=F64))
    with pytest.raises(ValueError, match="mask holds NaN"):
        am.retrieve(memory, memory[:2], mask=torch.full((50,), float("nan")))
    with pytest.raises(ValueError, match="mask must broadcast"):
        am.engines.retrieval.energy(memory, memory[:2], mask=torch.ones(2, 49, dtype=torch.bool))


def test_hopfield_update_takes_the_attention_convention():
    torch.manual_seed(1)
    r, y = torch.randn(2, 1, 3, 4, dtype=F64), torch.randn(2, 1, 6, 4, dtype=F64)
    keep = torch.ones(6, dtype=torch.bool)
    keep[2] = False
    res = hopfield_update(r, y, y, 1.5, mask=keep, max_steps=2, tol=0.0)
    ref = hopfield_update(r, y[:, :, keep], y[:, :, keep], 1.5, max_steps=2, tol=0.0)
    torch.testing.assert_close(res.output, ref.output)
    assert (res.association[..., 2] == 0).all()
    with pytest.raises(ValueError, match="mask hides every pattern"):
        hopfield_update(r, y, y, 1.5, mask=torch.zeros(6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask must broadcast to the scores' shape .* = \(2, 1, 3, 6\)"):
        hopfield_update(r, y, y, 1.5, mask=torch.ones(5, dtype=torch.bool))


def test_the_layers_keep_multihead_attentions_convention_true_hides():
    """hflayers' stored_pattern_padding_mask and association_mask are torch.nn.MultiheadAttention's
    key_padding_mask and attn_mask: True hides (the opposite of retrieve's mask), a float is added."""
    torch.manual_seed(2)
    layer = Hopfield(scaling=1.0, **STATIC).double()
    y, r = torch.randn(2, 6, 4, dtype=F64), torch.randn(2, 3, 4, dtype=F64)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[:, 4] = True  # hide stored pattern 4
    a = layer.association_matrix((y, r, y), stored_pattern_padding_mask=pad)
    assert (a[..., 4] == 0).all() and (a[..., 3] > 0).all()
    keep = ~pad[0]
    torch.testing.assert_close(layer((y, r, y), pad), am.retrieve(y[:, keep], r, 1.0))
    hide = torch.zeros(3, 6, dtype=torch.bool)
    hide[:, 4] = True
    torch.testing.assert_close(layer((y, r, y), association_mask=hide), layer((y, r, y), pad))
    additive = torch.zeros(3, 6, dtype=F64).masked_fill(hide, float("-inf"))
    torch.testing.assert_close(layer((y, r, y), association_mask=additive), layer((y, r, y), pad))
    # torch's own layer reads the boolean mask the same way
    mha = torch.nn.MultiheadAttention(4, 1, batch_first=True, dtype=F64)
    _, w = mha(r, y, y, key_padding_mask=pad)
    assert (w[..., 4] == 0).all()


def test_a_layer_mask_that_hides_every_stored_pattern_is_an_error():
    layer = Hopfield(8)
    x = torch.randn(2, 5, 8)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[1] = True
    with pytest.raises(ValueError, match="hide every stored pattern from state pattern 0 of batch item 1"):
        layer(x, stored_pattern_padding_mask=pad)
    with pytest.raises(ValueError, match="hide every stored pattern"):
        layer.energy(x, stored_pattern_padding_mask=pad)
    causal_all = torch.ones(5, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match="hide every stored pattern"):
        HopfieldEncoderLayer(layer, dim_feedforward=16)(x, src_mask=causal_all)
    # the zero pattern (add_zero_association) is never hidden: such a row retrieves nothing, as in torch
    out = Hopfield(8, add_zero_association=True)(x, stored_pattern_padding_mask=pad)
    assert torch.isfinite(out).all()


def test_a_layer_mask_of_the_wrong_shape_or_kind_is_an_error_naming_it():
    layer = Hopfield(8)
    x = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match=r"stored_pattern_padding_mask must have shape \(B, S\) = \(2, 5\)"):
        layer(x, stored_pattern_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="association_mask must be boolean"):
        layer(x, association_mask=torch.zeros(5, 5, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"stored_pattern_padding_mask must be a torch\.Tensor"):
        layer(x, stored_pattern_padding_mask=[[False] * 5] * 2)
