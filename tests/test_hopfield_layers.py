"""The Hopfield layers against the attention formula, Model B, torch's MultiheadAttention and transformer layers."""

import pytest
import torch
from torch import nn

import assocmem as am
from assocmem.models import model_b
from assocmem.nn import Hopfield, HopfieldDecoderLayer, HopfieldEncoderLayer, HopfieldLayer, HopfieldPooling

F64 = torch.float64
PLAIN = dict(normalize_stored_pattern=False, normalize_stored_pattern_affine=False, normalize_state_pattern=False,
             normalize_state_pattern_affine=False, normalize_pattern_projection=False,
             normalize_pattern_projection_affine=False)  # fmt: skip
STATIC = dict(PLAIN, stored_pattern_as_static=True, state_pattern_as_static=True, pattern_projection_as_static=True,
              disable_out_projection=True)  # fmt: skip


def attention(q, k, v, beta):
    return torch.softmax(beta * q @ k.transpose(-1, -2), dim=-1) @ v


def test_identity_projections_one_step_is_softmax_attention_and_n_steps_iterate():
    y, r, v = (
        torch.randn(3, 7, 4, dtype=F64),
        torch.randn(3, 5, 4, dtype=F64),
        torch.randn(3, 7, 4, dtype=F64),
    )
    for steps in (0, 1, 4):
        layer = Hopfield(scaling=0.8, update_steps_max=steps, update_steps_eps=1e-300, **STATIC)
        x = r
        for _ in range(steps):
            x = attention(x, y, y, 0.8)
        torch.testing.assert_close(layer((y, r, v)), attention(x, y, v, 0.8))
        # the same as the retrieval engine with per-item memories
        torch.testing.assert_close(layer((y, r, v)), am.retrieve(y, r, 0.8, values=v, steps=steps + 1))


def test_energy_is_model_b_and_never_increases_over_the_updates():
    y, r = torch.randn(2, 9, 5, dtype=F64), 2 * torch.randn(2, 4, 5, dtype=F64)
    layer = Hopfield(scaling=1.7, update_steps_max=6, update_steps_eps=1e-300, **STATIC)
    res = layer.retrieve((y, r, y))
    assert res.energies.shape == (7, 2, 1, 4)
    assert (res.energies.diff(dim=0) <= 1e-10).all()
    for b in range(2):
        expected = model_b(y[b], beta=1.7, reduced=True).energy({"v": r[b]})
        torch.testing.assert_close(layer.energy((y, r, y))[b, 0], expected)
    torch.testing.assert_close(res.association, layer.association_matrix((y, r, y)))


def mha_pair(embed=8, heads=2, **kw):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(embed, heads, batch_first=True, dtype=F64, **kw)
    with torch.no_grad():
        for p in mha.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    options = dict(PLAIN, num_heads=heads, concat_bias_pattern=kw.get("add_bias_kv", False),
                   add_zero_association=kw.get("add_zero_attn", False),
                   stored_pattern_size=kw.get("kdim"), input_bias=kw.get("bias", True),
                   pattern_projection_size=kw.get("vdim"))  # fmt: skip
    hop = Hopfield(embed, **options).double()
    hop.association_core.load_state_dict(mha.state_dict())
    return mha, hop


@pytest.mark.parametrize(
    "kw", [{}, {"add_bias_kv": True}, {"add_zero_attn": True}, {"kdim": 5, "vdim": 3}, {"bias": False}]
)
def test_equals_multihead_attention_with_copied_weights(kw):
    mha, hop = mha_pair(**kw)
    q = torch.randn(3, 4, 8, dtype=F64)
    k = torch.randn(3, 6, kw.get("kdim", 8), dtype=F64)
    v = torch.randn(3, 6, kw.get("vdim", 8), dtype=F64)
    expected, weights = mha(q, k, v)
    torch.testing.assert_close(hop((k, q, v)), expected)
    torch.testing.assert_close(hop.association_matrix((k, q, v)).mean(1), weights)
    if not kw:
        torch.testing.assert_close(hop(q), mha(q, q, q)[0])  # self-association


@pytest.mark.parametrize("kind", ["bool", "float", "per_head"])
def test_equals_multihead_attention_with_masks(kind):
    mha, hop = mha_pair()
    q, k = torch.randn(3, 4, 8, dtype=F64), torch.randn(3, 6, 8, dtype=F64)
    padding = torch.zeros(3, 6, dtype=torch.bool)
    padding[0, 4:] = True
    padding[2, 0] = True
    if kind == "bool":
        assoc = torch.rand(4, 6) < 0.3
        assoc[:, 1] = False
    elif kind == "float":
        assoc = torch.randn(4, 6, dtype=F64)
    else:
        assoc = torch.randn(3 * 2, 4, 6, dtype=F64)
    if kind != "bool":  # an additive padding mask, as torch wants the two masks of one kind
        padding = torch.zeros(3, 6, dtype=F64).masked_fill(padding, float("-inf"))
    expected = mha(q, k, k, key_padding_mask=padding, attn_mask=assoc)[0]
    torch.testing.assert_close(
        hop((k, q, k), stored_pattern_padding_mask=padding, association_mask=assoc), expected
    )


def test_transformer_layers_replace_torchs_with_copied_weights():
    torch.manual_seed(1)
    width, heads = 8, 2
    ref_enc = nn.TransformerEncoderLayer(width, heads, 16, dropout=0.0, batch_first=True, dtype=F64).eval()
    ref_dec = nn.TransformerDecoderLayer(width, heads, 16, dropout=0.0, batch_first=True, dtype=F64).eval()
    hop = Hopfield(width, num_heads=heads, **PLAIN).double()
    enc = HopfieldEncoderLayer(hop, 16, dropout=0.0).double().eval()
    dec = HopfieldDecoderLayer(hop, hop, 16, dropout=0.0).double().eval()
    names = {"self_attn": "hopfield_association.association_core", "linear1": "linear_residual",
             "linear2": "linear_output", "norm1": "norm_residual", "norm2": "norm_output"}  # fmt: skip
    dec_names = {"self_attn": "hopfield_association_self.association_core",
                 "multihead_attn": "hopfield_association_cross.association_core", "linear1": "linear_residual",
                 "linear2": "linear_output", "norm1": "norm_residual_self", "norm2": "norm_residual_cross",
                 "norm3": "norm_output"}  # fmt: skip
    for ref, ours, table in ((ref_enc, enc, names), (ref_dec, dec, dec_names)):
        state = {}
        for key, value in ref.state_dict().items():
            head, rest = key.split(".", 1)
            state[f"{table[head]}.{rest}"] = value
        ours.load_state_dict(state)
    src, tgt = torch.randn(2, 5, width, dtype=F64), torch.randn(2, 3, width, dtype=F64)
    causal = nn.Transformer.generate_square_subsequent_mask(3, dtype=F64)
    torch.testing.assert_close(enc(src), ref_enc(src))
    torch.testing.assert_close(dec(tgt, src, tgt_mask=causal), ref_dec(tgt, src, tgt_mask=causal))
    stack = nn.TransformerEncoder(enc, num_layers=2, enable_nested_tensor=False)
    ref_stack = nn.TransformerEncoder(ref_enc, num_layers=2, enable_nested_tensor=False)
    torch.testing.assert_close(stack(src), ref_stack(src))
    assert nn.TransformerDecoder(dec, num_layers=2)(tgt, src).shape == tgt.shape


def test_per_head_scaling_and_steps_equal_separate_heads():
    y, r = torch.randn(2, 6, 6, dtype=F64), torch.randn(2, 3, 6, dtype=F64)
    beta = torch.tensor([0.5, 2.0], dtype=F64)
    steps = torch.tensor([0, 3])
    layer = Hopfield(
        6, num_heads=2, scaling=beta, update_steps_max=steps, update_steps_eps=1e-300, **PLAIN
    ).double()
    out = layer.retrieve((y, r, y))
    q, k, _ = layer.association_core.project(r, y, y)
    for h in range(2):
        x = q[:, h]
        for _ in range(int(steps[h])):
            x = attention(x, k[:, h], k[:, h], float(beta[h]))
        torch.testing.assert_close(
            out.association[:, h], torch.softmax(float(beta[h]) * x @ k[:, h].transpose(1, 2), -1)
        )
    assert out.steps.shape == (2, 2, 3) and (out.steps == torch.tensor([0, 3]).view(1, 2, 1)).all()


@pytest.mark.parametrize("stop_on", ["association", "state"])
def test_until_converged_stops_on_the_chosen_quantity(stop_on):
    y = torch.randn(1, 8, 5, dtype=F64)
    r = y[:, :2] + 0.3 * torch.randn(1, 2, 5, dtype=F64)
    layer = Hopfield(
        scaling=1.0, update_steps_max=None, update_steps_eps=1e-9, update_steps_stop_on=stop_on, **STATIC
    )
    res = layer.retrieve((y, r, y))
    assert (res.steps == res.steps[0, 0, 0]).all() and 1 < int(res.steps[0, 0, 0]) < 1000
    fixed = attention(res.states[:, 0], y, y, 1.0)
    torch.testing.assert_close(fixed, res.states[:, 0], atol=1e-7, rtol=0)


def test_concat_bias_pattern_is_used_and_hopfield_space_norm_applies():
    layer = Hopfield(8, num_heads=2, concat_bias_pattern=True, normalize_hopfield_space=True,
                     normalize_hopfield_space_affine=True)  # fmt: skip
    x = torch.randn(2, 5, 8)
    before = layer(x)
    with torch.no_grad():
        layer.association_core.bias_k.mul_(50)
        layer.association_core.bias_v.add_(1)
    assert not torch.allclose(layer(x), before)
    assert layer.association_matrix(x).shape == (2, 2, 5, 6)  # the bias pattern is one more stored pattern
    q, _, _ = layer.association_core.project(x, x, x)
    torch.testing.assert_close(q.mean(-1), torch.zeros_like(q.mean(-1)), atol=1e-5, rtol=0)


def test_state_dict_names_are_hflayers_names():
    """Parameter names of hflayers 1.x (read from its source; the package is not installable here)."""
    assert sorted(Hopfield(8).state_dict()) == sorted(
        [f"association_core.{n}" for n in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")]
        + [f"{m}.{p}" for m in ("norm_stored_pattern", "norm_state_pattern", "norm_pattern_projection")
           for p in ("weight", "bias")]
    )  # fmt: skip
    sep = Hopfield(8, stored_pattern_size=5, pattern_projection_size=3, pattern_size=4, **PLAIN).state_dict()
    assert sep["association_core.q_proj_weight"].shape == (8, 8)
    assert sep["association_core.k_proj_weight"].shape == (8, 5)
    assert sep["association_core.v_proj_weight"].shape == (4, 3)
    assert sep["association_core.in_proj_bias"].shape == (8 + 8 + 4,)
    pool = HopfieldPooling(8, quantity=3, **PLAIN).state_dict()
    assert pool["pooling_weights"].shape == (1, 3, 8) and "hopfield.association_core.in_proj_weight" in pool
    look = HopfieldLayer(
        8, quantity=5, lookup_weights_as_separated=True, batch_first=False, **PLAIN
    ).state_dict()
    assert look["lookup_weights"].shape == (5, 1, 8) and look["target_weights"].shape == (5, 1, 8)
    # a state dict round-trips into a fresh layer and gives the same outputs
    a, b = HopfieldLayer(8, quantity=5), HopfieldLayer(8, quantity=5)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(a(x), b(x))


def test_pooling_and_lookup_follow_the_equations():
    x = torch.randn(4, 6, 8, dtype=F64)
    pool = HopfieldPooling(8, quantity=2, num_heads=1, scaling=0.9, **PLAIN).double()
    q, k, v = pool.hopfield.association_core.project(pool.pooling_weights.expand(4, 2, 8), x, x)
    core = pool.hopfield.association_core
    expected = core.out_proj(attention(q[:, 0], k[:, 0], v[:, 0], 0.9)).flatten(1)
    torch.testing.assert_close(pool(x), expected)
    look = HopfieldLayer(8, quantity=7, scaling=0.9, trainable=False, **PLAIN).double()
    assert not look.lookup_weights.requires_grad
    q, k, v = look.hopfield.association_core.project(
        x, look.lookup_weights.expand(4, 7, 8), look.lookup_weights.expand(4, 7, 8)
    )
    torch.testing.assert_close(
        look(x), look.hopfield.association_core.out_proj(attention(q[:, 0], k[:, 0], v[:, 0], 0.9))
    )
    seq = HopfieldPooling(8, quantity=2, batch_first=False)
    assert seq(torch.randn(6, 4, 8)).shape == (4, 16)


def test_gradients_flow_through_every_step_and_compile_works():
    layer = Hopfield(4, num_heads=2, update_steps_max=3, update_steps_eps=1e-300, **PLAIN).double()
    x = torch.randn(2, 3, 4, dtype=F64, requires_grad=True)
    torch.autograd.gradcheck(lambda x: layer(x), (x,))
    w = layer.association_core.in_proj_weight
    (g,) = torch.autograd.grad(layer(x).sum(), w)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    compiled = torch.compile(layer, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), layer(x))


def test_dropout_and_activation_options():
    layer = Hopfield(8, dropout=0.5, association_activation="tanh")
    x = torch.randn(2, 5, 8)
    assert (layer.eval()(x).abs() <= 1).all()
    assert not torch.allclose(layer.train()(x), layer.train()(x))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Hopfield(6, num_heads=4), "divisible"),
        (lambda: Hopfield(8, scaling=torch.ones(3), num_heads=2), "scaling"),
        (lambda: Hopfield(8, update_steps_max=-1), "update_steps_max"),
        (lambda: Hopfield(8, update_steps_eps=0.0), "update_steps_eps"),
        (lambda: Hopfield(8, normalize_hopfield_space_affine=True), "normalize_hopfield_space"),
        (lambda: Hopfield(8, association_activation="nope"), "association_activation"),
        (lambda: Hopfield(8, update_steps_stop_on="energy"), "update_steps_stop_on"),
        (lambda: Hopfield(8)(torch.randn(2, 8)), "3-D"),
        (
            lambda: Hopfield(8)(torch.randn(2, 3, 8), stored_pattern_padding_mask=torch.ones(2, 4).bool()),
            "padding",
        ),
        (
            lambda: Hopfield(8)(torch.randn(2, 3, 8), association_mask=torch.ones(3, 4).bool()),
            "association_mask",
        ),
        (lambda: HopfieldPooling(8, quantity=0), "quantity"),
    ],
)
def test_bad_options_are_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_static_pattern_projection_is_read_by_every_head():
    layer = Hopfield(8, num_heads=2, pattern_projection_as_static=True, **PLAIN).double()
    x = torch.randn(2, 5, 8, dtype=F64)
    q, k, _ = layer.association_core.project(x, x, x)
    beta = layer.scaling
    heads = [attention(q[:, h], k[:, h], x, beta) for h in range(2)]
    torch.testing.assert_close(layer(x), layer.association_core.out_proj(torch.cat(heads, dim=-1)))


def test_connected_pattern_projection_goes_through_the_stored_pattern_projection():
    layer = Hopfield(8, num_heads=2, pattern_projection_as_connected=True, **PLAIN).double()
    y, r = torch.randn(2, 5, 8, dtype=F64), torch.randn(2, 3, 8, dtype=F64)
    core = layer.association_core
    _, _, v = core.project(r, y, y)
    bk = core.in_proj_bias[8:16]
    inner = torch.nn.functional.linear(y, core.k_proj_weight, bk)
    expected_v = torch.nn.functional.linear(inner, core.v_proj_weight, core.in_proj_bias[16:])
    torch.testing.assert_close(v, expected_v.view(2, 5, 2, 4).transpose(1, 2))
