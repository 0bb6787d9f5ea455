"""The demo's building blocks: the generated sprites, the corrupted cues, the page and image-grid helpers, the
capacity sweep."""

import base64

import pytest
import torch

from assocmem.data.corruption import flip_bits, mask_rows
from assocmem.data.sprites import sprites
from assocmem.laboratory.capacity_gap import capacity_gap
from assocmem.laboratory.demo_models import demo_models
from assocmem.report.html import data_uri, escape, image, math, page, table
from assocmem.report.sprite_grid import BORDER, FRAMES, HIDDEN, GridRow, compose


def test_sprites_are_distinct_mirror_images_fixed_by_the_seed():
    images = sprites(48, 16, seed=3)
    assert images.shape == (48, 16, 16) and images.dtype == torch.float32
    assert set(images.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(images, images.flip(-1))  # left-right symmetric
    assert torch.equal(images, sprites(48, 16, seed=3)) and not torch.equal(images, sprites(48, 16, seed=4))
    assert torch.equal(sprites(12, 16, seed=3), images[:12])  # a smaller set is the start of a larger one
    assert len({tuple(x.flatten().tolist()) for x in images}) == 48
    every = sprites(4, 2)  # all 4 sprites of 2 x 2 pixels: repeats are drawn again until each is new
    assert len({tuple(x.flatten().tolist()) for x in every}) == 4


def test_sprites_reject_impossible_requests():
    with pytest.raises(ValueError, match="size must be even"):
        sprites(4, 15)
    with pytest.raises(ValueError, match="only 4 distinct sprites"):
        sprites(5, 2)
    with pytest.raises(ValueError, match="count must be an int >= 1"):
        sprites(0)


def test_flip_bits_flips_exactly_the_asked_fraction():
    patterns = sprites(10, 8).flatten(1)
    cues = flip_bits(patterns, 0.25, generator=torch.Generator().manual_seed(0))
    assert ((cues != patterns).sum(1) == 16).all()
    assert torch.equal(flip_bits(patterns, 0.0), patterns)
    with pytest.raises(ValueError, match=r"fraction must be a number in \[0, 1\], got 1.5"):
        flip_bits(patterns, 1.5)


def test_mask_rows_hides_the_bottom_rows():
    images = sprites(3, 16)
    cues, hidden = mask_rows(images, 0.375)
    assert hidden[:, 10:].all() and not hidden[:, :10].any()
    assert (cues[:, 10:] == -1).all() and torch.equal(cues[:, :10], images[:, :10])
    with pytest.raises(ValueError, match="images must be a"):
        mask_rows(images.flatten(1), 0.5)


def test_html_helpers_escape_and_embed():
    assert escape('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"
    assert math("T_{ij} = ξ_μ x^{n-1} <") == "T<sub>ij</sub> = ξ<sub>μ</sub> x<sup>n-1</sup> &lt;"
    png = b"\x89PNG\r\n\x1a\n" + b"rest"
    assert base64.b64decode(data_uri(png).split(",", 1)[1]) == png
    with pytest.raises(ValueError, match="PNG"):
        data_uri(b"GIF89a")
    assert 'alt="a &lt;b&gt;"' in image(png, "a <b>", "caption")
    assert table(["a", "b"], [["1", "<i>2</i>"]], numeric=(0,)).count('class="num"') == 2
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        table(["a", "b"], [["1"]])
    doc = page("t & t", "<p>x</p>")
    assert doc.startswith("<!DOCTYPE html>") and "<title>t &amp; t</title>" in doc and "http" not in doc


def test_grid_frames_say_exact_or_not_and_shade_hidden_pixels():
    images = sprites(2, 4)
    hidden = torch.zeros(2, 4, 4, dtype=torch.bool)
    hidden[:, -1] = True
    grid = compose(
        [GridRow("cue", images, None, hidden), GridRow("recalled", images, torch.tensor([True, False]))],
        scale=1,
    )
    cell = 4 + 2 * BORDER
    assert grid.shape[1] == 2 * cell + 6
    second_row = cell + 6
    assert torch.allclose(grid[second_row, 0], torch.tensor(FRAMES[True]))
    assert torch.allclose(grid[second_row, cell + 6], torch.tensor(FRAMES[False]))
    assert torch.allclose(grid[0, 0], torch.tensor(FRAMES[None]))
    assert torch.allclose(grid[BORDER + 3, BORDER], torch.tensor(HIDDEN))  # last row of a cue: hidden
    assert not torch.allclose(grid[second_row + BORDER + 3, BORDER], torch.tensor(HIDDEN))


def test_capacity_gap_separates_classical_from_dense():
    models = [m for m in demo_models() if m.key in ("classical", "dam3")]
    gap = capacity_gap(models, [4, 32], neurons=64, cues=32, seed=1)
    classical, dam = (m.name for m in models)
    assert gap.cues == [32, 32] and gap.memories == [4, 32]
    assert gap.recalled[dam] == [1.0, 1.0]  # K = 32 = 0.5 N: far beyond 0.138 N, far below N^2
    assert gap.recalled[classical][1] < 0.5
    assert gap.reach(dam) == 32 and (gap.reach(classical) or 0) < 32
    assert "every K measured" in gap.describe()
    with pytest.raises(ValueError, match="memories must be a non-empty list"):
        capacity_gap(models, [0])
