"""The static layer's fill (scene/static_fill.py): which Gaussians the training frames showed outside
the hands, the colours the unseen ones take, and the holes painted from around them."""
import torch

from gaussian_renderer import deform_gaussians, render_deformed
from scene.static_fill import (fill_colours, fill_holes, hand_free_pixels, pull_push, shown_weight,
                               with_features)
from test_render import PIPE, TinyModel, make_camera
from utils.sh_utils import RGB2SH


def test_hand_free_pixels_leave_out_the_hand_and_a_margin_around_it():
    mask = torch.zeros(2, 9, 9)
    mask[1, 4, 4] = 1.0   # one hand pixel, in the second channel
    free = hand_free_pixels(mask, margin=2)
    assert free.shape == (1, 9, 9)
    assert (free[0, 2:7, 2:7] == 0).all()
    assert free.sum() == 81 - 25
    assert hand_free_pixels(mask, margin=0).sum() == 80


def test_shown_weight_is_each_gaussians_blending_weight_summed_over_hand_free_pixels():
    model = TinyModel(n=10, seed=3)
    deformed = deform_gaussians(model, 0.0, 0.0, 0.0)
    camera = make_camera()
    camera.mask = torch.zeros(1, 30, 40)
    camera.mask[:, :, :20] = 1.0   # the left half is hand
    black = torch.zeros(3)

    def draw(colors):
        return render_deformed(camera, deformed, PIPE, black, override_color=colors)

    shown = shown_weight([(camera, draw)], 10, "cpu")
    free = hand_free_pixels(camera.mask)[0]
    for i in range(10):   # the same, one Gaussian at a time: its colour alone, 1 in the red channel
        colors = torch.zeros(10, 3)
        colors[i, 0] = 1.0
        expected = (draw(colors)["render"][0] * free).sum()
        torch.testing.assert_close(shown[i], expected, rtol=1e-4, atol=1e-6)
    assert shown.max() > 0.1
    unmasked = make_camera()   # a view without a hand mask tells nothing: skipped
    assert torch.equal(shown_weight([(unmasked, draw)], 10, "cpu"), torch.zeros(10))
    nothing_static = torch.zeros(10, dtype=torch.bool)   # every Gaussian a hand: an empty static layer
    empty = shown_weight([(camera, lambda colors: render_deformed(camera, deformed, PIPE, black, override_color=colors,
                                                                  gaussian_subset=nothing_static))], 10, "cpu")
    assert torch.equal(empty, torch.zeros(10))


def test_unseen_static_gaussians_take_the_inverse_distance_mean_colour_of_their_shown_neighbours():
    xyz = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0], [0.5, 5, 0], [9.0, 9, 9]])
    features = torch.rand(5, 4, 3)
    static = torch.tensor([True, True, True, True, False])
    shown = torch.tensor([5.0, 5.0, 0.0, 0.0, 0.0])   # 2 and 3 never shown; 4 is a hand
    filled, count = fill_colours(xyz, features, static, shown, neighbours=2)
    assert count == 2
    for row, (d0, d1) in ((2, (3.0, 2.0)), (3, ((0.25 + 25) ** 0.5, (0.25 + 25) ** 0.5))):
        w0, w1 = 1 / d0, 1 / d1
        expected = (w0 * features[0, 0] + w1 * features[1, 0]) / (w0 + w1)
        torch.testing.assert_close(filled[row, 0], expected)
        assert (filled[row, 1:] == 0).all()   # no view-dependent colour for a guess
    assert torch.equal(filled[[0, 1, 4]], features[[0, 1, 4]])   # shown, or not static: as they were
    assert fill_colours(xyz, features, static, torch.zeros(5))[1] == 0   # nothing shown: nothing to copy


def test_pull_push_keeps_covered_pixels_and_gives_a_hole_its_borders_colour():
    colour = torch.tensor([0.2, 0.5, 0.7]).reshape(3, 1, 1)
    weight = torch.ones(1, 16, 16)
    weight[:, 5:11, 4:12] = 0.0
    out = pull_push(colour * weight, weight)
    torch.testing.assert_close(out, colour.expand(3, 16, 16))
    left_right = torch.cat([torch.zeros(3, 16, 8), torch.ones(3, 16, 8)], dim=2)
    out = pull_push(left_right * weight, weight)
    assert torch.equal(out[:, weight[0] > 0], left_right[:, weight[0] > 0])
    assert out[:, 8, 4].mean() < 0.5 < out[:, 8, 11].mean()   # each side of the hole leans to its own border


def test_fill_holes_paints_only_the_coverage_the_hands_took_away():
    for background in (torch.zeros(3), torch.ones(3)):
        floor = torch.tensor([0.6, 0.4, 0.3]).reshape(3, 1, 1)
        static_alpha = torch.ones(1, 32, 32)
        static_alpha[:, 4:8, 4:8] = 0.0            # the hole where the hand was
        static_alpha[:, :, 31:] = 0.0               # empty space the full render does not cover either
        full_alpha = torch.ones(1, 32, 32)
        full_alpha[:, :, 31:] = 0.0
        bg = background.reshape(3, 1, 1)
        static_rgb = floor * static_alpha + (1 - static_alpha) * bg
        out = fill_holes(static_rgb, static_alpha, full_alpha, background)
        # (atol: the interpolation of the painted coverage reaches a little past its blocks)
        torch.testing.assert_close(out[:, :, :31], floor.expand(3, 32, 31), atol=1e-3, rtol=0)
        torch.testing.assert_close(out[:, :, 31:], bg.expand(3, 32, 1))   # not a hole: left as it was
        assert torch.equal(fill_holes(static_rgb, static_alpha, static_alpha, background), static_rgb)


def test_fill_holes_leaves_a_translucent_static_layer_as_it_is_where_it_is_as_translucent_around():
    """A static layer fitted over a black background at alpha 0.8 everywhere carries colours that
    already give the scene's colour at that alpha. Where the hands cover it, nothing is missing
    against its usual coverage: painting full_alpha - static_alpha (0.2) would brighten it into a
    ghost of the hand. A spot where its alpha drops under the hands is painted up to about the
    usual coverage, with the colour per unit alpha around it."""
    floor = torch.tensor([0.6, 0.4, 0.3]).reshape(3, 1, 1)
    black = torch.zeros(3)
    static_alpha = torch.full((1, 16, 16), 0.8)
    full_alpha = static_alpha.clone()
    full_alpha[:, 4:12, 4:12] = 1.0                 # the hands over the middle
    static_rgb = floor * static_alpha / 0.8         # as fitted: the floor's colour at alpha 0.8
    torch.testing.assert_close(fill_holes(static_rgb, static_alpha, full_alpha, black), static_rgb)
    emptied = static_alpha.clone()
    emptied[:, 6:10, 6:10] = 0.1                    # nothing static left under part of the hands
    out = fill_holes(floor * emptied / 0.8, emptied, full_alpha, black)
    torch.testing.assert_close(out[:, :, :4], floor.expand(3, 16, 4))   # away from the hands: as it was
    spot = out[:, 7:9, 7:9]
    assert (spot > floor * 0.1 / 0.8 + 0.3 * floor).all()   # painted well beyond what was left ...
    assert (spot < floor * 1.05).all()                       # ... and never brighter than the floor


def test_with_features_replaces_only_the_colours():
    model = TinyModel(n=4)
    deformed = deform_gaussians(model, 0.0, 0.0, 0.0)
    other = torch.zeros_like(deformed.features)
    other[:, 0] = RGB2SH(torch.ones(3))
    swapped = with_features(deformed, other)
    assert swapped.features is other and swapped.means3D is deformed.means3D
    assert with_features(deformed, None) is deformed
