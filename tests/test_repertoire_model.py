"""The repertoire model (docs/repertoire.md, "The model"): the chunked Hopfield pooling equals one softmax over the
whole bag (values, weights, gradients; with abundance), parts merge exactly, the embedding recomputed per chunk
equals the whole one (values and gradients), padding and chunking change nothing, the one-hot path equals the
coded one, and the recipe refuses bad settings by name."""

from __future__ import annotations

import math
import random

import pytest
import torch

from assocmem.engines.bank.launch import launch
from assocmem.engines.bank.merge import merge
from assocmem.repertoire import Repertoire, encode
from assocmem.repertoire.alphabet import PAD
from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.embedding import SequenceEmbedding, embed_chunks, one_hot, position_features
from assocmem.repertoire.model import RepertoireClassifier
from assocmem.repertoire.pooling import AttentionPooling, MaxPooling, MeanPooling
from assocmem.repertoire.training import epoch_order

SEQUENCES = ["CASSLGQ", "CAW", "CASRDWHF", "C", "CSARDGTEAFF", "CASSPRDWYHEQYF", "CAT", "CASSQD"]


def bag_tensors(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    letters = "ACDEFGHIKLMNPQRSTVWY"
    seqs = [
        "".join(letters[int(i)] for i in torch.randint(0, 20, (int(m),), generator=g))
        for m in torch.randint(1, 16, (n,), generator=g)
    ]
    codes, lengths = encode(seqs)
    return codes, lengths, torch.randint(1, 50, (n,), generator=g)


def reference_pooling(
    pool: AttentionPooling, h: torch.Tensor, counts: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The definition: one softmax over the whole bag, log counts added with abundance."""
    s = pool.beta * pool.queries.to(h.dtype) @ h.T
    if pool.abundance:
        s = s + torch.log(counts.to(h.dtype))
    w = torch.softmax(s, -1)
    return w @ h, w


@pytest.mark.parametrize("abundance", [False, True])
@pytest.mark.parametrize("chunk", [5, 64, 1000])
def test_chunked_attention_pooling_equals_one_softmax_values_weights_and_gradients(abundance, chunk):
    torch.manual_seed(0)
    n, d = 200, 6
    h = (3 * torch.randn(n, d, dtype=torch.float64)).requires_grad_()
    counts = torch.randint(1, 1000, (n,))
    pool = AttentionPooling(d, heads=3, beta=0.9, abundance=abundance, chunk=chunk).double()
    out, w = pool(h, counts)
    ref_out, ref_w = reference_pooling(pool, h, counts)
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(w, ref_w, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(w.sum(1), torch.ones(3, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    probe = torch.randn(3, d, dtype=torch.float64)
    grads = torch.autograd.grad((out * probe).sum() + (w[:, :5] ** 2).sum(), (h, pool.queries))
    ref = torch.autograd.grad((ref_out * probe).sum() + (ref_w[:, :5] ** 2).sum(), (h, pool.queries))
    for a, b in zip(grads, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_parts_of_a_bag_merge_into_the_whole_pooling():
    """A bag split into parts (ranks of a sharded bank): each part's (pooled, lse) merge exactly (§8)."""
    torch.manual_seed(1)
    h, counts = torch.randn(500, 8, dtype=torch.float64), torch.randint(1, 9, (500,))
    pool = AttentionPooling(8, heads=2, beta=2.0, abundance=True, chunk=50).double()
    whole, lse = pool.part(h, counts)
    parts = [pool.part(h[a:b], counts[a:b]) for a, b in ((0, 123), (123, 400), (400, 500))]
    out, merged_lse = merge(torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts]))
    torch.testing.assert_close(out, whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(merged_lse, lse, rtol=1e-12, atol=1e-12)


def pool_on_rank(rank: int, world: int) -> tuple:
    """One rank of the sharded pooling: its share of a bag both ranks draw from the same seed."""
    import torch.distributed as dist

    torch.manual_seed(1)
    h, counts = torch.randn(90, 8, dtype=torch.float64), torch.randint(1, 9, (90,))
    pool = AttentionPooling(8, heads=2, beta=2.0, abundance=True, group=dist.group.WORLD).double()
    part = slice(0, 40) if rank == 0 else slice(40, 90)
    out, w = pool(h[part], counts[part])
    return out, w


def test_the_pooling_over_a_sharded_bag_equals_the_whole_bag():
    """group=: each rank pools its own sequences through a ShardedBackend; the answer is the whole bag's."""
    (out0, w0), (out1, w1) = launch(pool_on_rank, 2)
    torch.manual_seed(1)
    h, counts = torch.randn(90, 8, dtype=torch.float64), torch.randint(1, 9, (90,))
    pool = AttentionPooling(8, heads=2, beta=2.0, abundance=True).double()
    whole, weights = pool(h, counts)
    for out in (out0, out1):
        torch.testing.assert_close(out, whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.cat([w0, w1], 1), weights, rtol=1e-12, atol=1e-14)


def test_abundance_is_a_sequence_repeated_count_times():
    """log counts in the scores = each sequence stored count times (the meaning the docs give it)."""
    torch.manual_seed(2)
    h, counts = torch.randn(20, 4, dtype=torch.float64), torch.randint(1, 5, (20,))
    pool = AttentionPooling(4, heads=2, abundance=True).double()
    out, _ = pool(h, counts)
    plain = AttentionPooling(4, heads=2).double()
    plain.queries.data.copy_(pool.queries.data)
    repeated, _ = plain(h.repeat_interleave(counts, 0))
    torch.testing.assert_close(out, repeated, rtol=1e-12, atol=1e-12)


def test_mean_and_max_pooling():
    h, counts = torch.randn(10, 3, dtype=torch.float64), torch.arange(1, 11)
    out, w = MeanPooling(abundance=True)(h, counts)
    torch.testing.assert_close(out[0], (counts[:, None] * h).sum(0) / counts.sum())
    torch.testing.assert_close(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    out, w = MeanPooling()(h, counts)
    torch.testing.assert_close(out[0], h.mean(0))
    out, w = MaxPooling()(h, counts)
    assert w is None and torch.equal(out[0], h.amax(0))


def test_position_features_mark_start_centre_and_end():
    f = position_features(torch.tensor([5, 1, 2]), 6, torch.float64)
    torch.testing.assert_close(f[0, :, 2], torch.tensor([1.0, 0.5, 0.0, 0.5, 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(f[0, :, 0], torch.tensor([1.0, 0.5, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(f[0, :, 1], torch.tensor([0.0, 0.0, 0.0, 0.5, 1.0, 0.0], dtype=torch.float64))
    assert f[1].abs().sum() == 0  # one residue: the centre
    assert (
        f[2, :2, 0].tolist() == [1.0, 0.0]
        and f[2, :2, 1].tolist() == [0.0, 1.0]
        and f[2, 2:].abs().sum() == 0
    )


def test_the_embedding_ignores_padding_and_chunking_and_equals_the_onehot_path():
    torch.manual_seed(3)
    codes, lengths, _ = bag_tensors(40)
    emb = SequenceEmbedding(8, 5).double()
    whole = emb(one_hot(codes, torch.float64), lengths)
    padded = torch.cat((codes, torch.full((40, 7), PAD, dtype=torch.uint8)), 1)
    torch.testing.assert_close(emb(one_hot(padded, torch.float64), lengths), whole, rtol=1e-12, atol=1e-13)
    alone = torch.cat(
        [emb(one_hot(codes[i : i + 1, : lengths[i]], torch.float64), lengths[i : i + 1]) for i in range(40)]
    )
    torch.testing.assert_close(alone, whole, rtol=1e-12, atol=1e-12)
    assert torch.isfinite(whole).all()  # sequences shorter than the kernel get one zero-padded window


@pytest.mark.parametrize("chunk", [7, 1000])
def test_the_embedding_recomputed_per_chunk_equals_the_whole_values_and_gradients(chunk):
    torch.manual_seed(4)
    codes, lengths, _ = bag_tensors(50)
    emb = SequenceEmbedding(6, 3).double()
    probe = torch.randn(50, 6, dtype=torch.float64)
    ref = emb(one_hot(codes, torch.float64), lengths)
    ref_grad = torch.autograd.grad((ref * probe).sum(), list(emb.parameters()))
    got = embed_chunks(emb, codes, lengths, chunk, torch.float64)
    grad = torch.autograd.grad((got * probe).sum(), list(emb.parameters()))
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(grad, ref_grad, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pooling", ["attention", "mean", "max"])
def test_the_classifier_chunked_equals_whole_and_the_onehot_path(pooling):
    codes, lengths, counts = bag_tensors(60, seed=5)
    config = RepertoireConfig(
        pooling=pooling, dim=8, kernel=3, heads=2, abundance=True, chunk=7, dtype="float64"
    )
    model = RepertoireClassifier(config, torch.Generator().manual_seed(0))
    whole = RepertoireClassifier(RepertoireConfig(**{**config.to_dict(), "chunk": 1000}))
    whole.load_state_dict(model.state_dict())
    bag = Repertoire("b", codes, lengths, counts, 1)
    a, b = model(bag), whole(bag)
    torch.testing.assert_close(a.logit, b.logit, rtol=1e-12, atol=1e-12)
    h = model.embed_onehot(one_hot(codes, torch.float64), lengths)
    torch.testing.assert_close(model.head(h, counts).logit, a.logit, rtol=1e-12, atol=1e-12)
    if pooling == "max":
        assert a.weights is None
    else:
        assert a.weights.shape == (2 if pooling == "attention" else 1, 60)
        torch.testing.assert_close(a.weights.sum(1), torch.ones(a.weights.shape[0], dtype=torch.float64))


def test_default_beta_is_one_over_sqrt_d():
    assert RepertoireConfig(dim=16).inverse_temperature == 0.25
    assert AttentionPooling(16).beta == 0.25
    assert math.isclose(RepertoireConfig(dim=16, beta=2).inverse_temperature, 2.0)


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"pooling": "sum"}, "pooling"),
        ({"dim": 0}, "dim"),
        ({"kernel": 2.5}, "kernel"),
        ({"heads": True}, "heads"),
        ({"beta": -1.0}, "beta"),
        ({"beta": math.nan}, "beta"),
        ({"lr": 0}, "lr"),
        ({"subsample": 0}, "subsample"),
        ({"patience": -2}, "patience"),
        ({"abundance": "yes"}, "abundance"),
        ({"balanced": 1}, "balanced"),
        ({"balanced": True, "bags_per_step": 3}, "even bags_per_step"),
        ({"dtype": "float16"}, "dtype"),
        ({"hidden": -1}, "hidden"),
        ({"epocs": 3}, "unknown setting"),
    ],
)
def test_bad_recipes_are_refused_by_name(settings, names):
    with pytest.raises(ValueError, match=names):
        RepertoireConfig.from_dict(settings, "recipe.json")


@pytest.mark.parametrize(("positives", "negatives"), [(6, 6), (7, 4), (2, 9)])
def test_balanced_steps_pair_a_positive_with_a_negative(positives, negatives):
    labels = [1] * positives + [0] * negatives
    random.Random(positives).shuffle(labels)
    order = epoch_order(labels, True, torch.Generator().manual_seed(3))
    assert sorted(order) == list(range(len(labels)))  # every bag once
    pairs = min(positives, negatives)
    for k in range(pairs):  # each step of 2 (or of any even size) holds as many of each class
        assert {labels[order[2 * k]], labels[order[2 * k + 1]]} == {0, 1}
    assert len({labels[i] for i in order[2 * pairs :]}) <= 1  # the larger class's rest closes the epoch
    again = epoch_order(labels, True, torch.Generator().manual_seed(4))
    assert again != order  # drawn from the generator


def test_unbalanced_order_is_the_plain_permutation():
    """balanced=false draws what the loop drew before the option existed, so older runs resume exactly."""
    labels = [1, 0, 0, 1, 1, 0, 1]
    g, h = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert epoch_order(labels, False, g) == torch.randperm(len(labels), generator=h).tolist()
