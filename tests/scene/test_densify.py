"""DensificationStrategy: statistics, clone vs split selection, split sampling, pruning, opacity reset."""
from argparse import ArgumentParser

import pytest
import torch
from scipy.stats import chi2

from arguments import OptimizationParams
from scene.densify import DensificationStrategy, split_rows
from scene.gaussian_model import TENSOR_NAMES, GaussianModel
from utils.general_utils import inverse_sigmoid

EXTENT = 10.0          # percent_dense 0.01 -> clone/split boundary at scale 0.1
THRESHOLD = 0.0002


def default_opt():
    parser = ArgumentParser()
    return OptimizationParams(parser).extract(parser.parse_args([]))


def make_model(scales, opacities=None, seed=0) -> GaussianModel:
    """One Gaussian per entry of scales (largest axis), random everything else, ready to train."""
    g = torch.Generator().manual_seed(seed)
    n = len(scales)
    opacities = torch.full((n,), 0.5) if opacities is None else torch.tensor(opacities)
    model = GaussianModel(1, 2, device="cpu")
    axis_scales = torch.tensor(scales)[:, None] * torch.tensor([[1.0, 0.5, 0.25]])
    model.cat_tensors({
        "xyz": torch.randn(n, 3, generator=g), "f_dc": torch.randn(n, 1, 3, generator=g),
        "f_rest": torch.randn(n, 3, 3, generator=g), "opacity": inverse_sigmoid(opacities)[:, None],
        "scaling": torch.log(axis_scales), "rotation": torch.randn(n, 4, generator=g),
        "mask": torch.randn(n, 2, generator=g)})
    model.spatial_lr_scale = 1.0
    model.training_setup(default_opt())
    return model


def add_view(strategy, screen_grads, visible=None, radii=None):
    """screen_grads [N, 2] as d loss / d NDC centre of one rendered view."""
    n = len(screen_grads)
    viewspace = torch.zeros(n, 3, requires_grad=True)
    viewspace.grad = torch.cat([torch.tensor(screen_grads), torch.full((n, 1), 5.0)], dim=1)
    visible = torch.ones(n, dtype=torch.bool) if visible is None else torch.tensor(visible)
    strategy.add_stats(viewspace, visible, None if radii is None else torch.tensor(radii))


def take_adam_step(model):
    loss = sum(t.pow(2).sum() for t in (model.get_xyz, model.get_features, model.get_opacity,
                                          model.get_scaling, model.get_rotation))
    loss.backward()
    model.optimizer.step()
    model.optimizer.zero_grad(set_to_none=True)


def find_rows(model, name, value):
    """Indices of rows of stored tensor `name` equal to value."""
    t = model.tensors[name].detach()
    return [i for i in range(t.shape[0]) if torch.equal(t[i], value)]


# --- statistics -----------------------------------------------------------------------------
def test_stats_accumulate_the_norm_of_the_screen_gradient_over_visible_views():
    strategy = DensificationStrategy()
    strategy.reset(3, "cpu")
    add_view(strategy, [[3e-4, 4e-4], [1.0, 1.0], [0.0, 2e-4]], visible=[True, False, True], radii=[4, 50, 7])
    add_view(strategy, [[0.0, 0.0], [6e-4, 8e-4], [0.0, 0.0]], visible=[True, True, False], radii=[9, 2, 30])
    torch.testing.assert_close(strategy.xyz_gradient_accum[:, 0], torch.tensor([5e-4, 1e-3, 2e-4]))
    assert strategy.denom[:, 0].tolist() == [2, 1, 1]
    assert strategy.max_radii2D.tolist() == [9, 2, 7]   # invisible views do not count
    torch.testing.assert_close(strategy.mean_grads(), torch.tensor([2.5e-4, 1e-3, 2e-4]))


def test_never_seen_gaussians_have_zero_mean_gradient():
    strategy = DensificationStrategy()
    strategy.reset(2, "cpu")
    add_view(strategy, [[1.0, 0.0], [1.0, 0.0]], visible=[True, False])
    assert strategy.mean_grads().tolist() == [1.0, 0.0]


def test_stats_need_a_gradient_and_matching_sizes():
    strategy = DensificationStrategy()
    strategy.reset(3, "cpu")
    with pytest.raises(RuntimeError, match="backward"):
        strategy.add_stats(torch.zeros(3, 3, requires_grad=True), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="reset"):
        add_view(strategy, [[0.0, 0.0]] * 4)


# --- clone / split selection ----------------------------------------------------------------
def test_clone_small_and_split_large_above_the_threshold():
    # rows: small-hot, small-cold, large-hot, large-cold, small with a per-component-small but
    # norm-hot gradient, small with norm below the threshold but component sum above it
    model = make_model([0.05, 0.05, 0.5, 0.5, 0.08, 0.08])
    strategy = DensificationStrategy(percent_dense=0.01)
    strategy.reset(6, "cpu")
    add_view(strategy, [[3e-4, 0.0], [1e-4, 0.0], [0.0, 3e-4], [1e-4, 1e-4], [1.8e-4, 1.2e-4], [1.2e-4, 1.2e-4]])
    take_adam_step(model)
    old = {name: t.detach().clone() for name, t in model.tensors.items()}

    counts = strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, None)

    assert counts == {"cloned": 2, "split": 1, "pruned": 0}
    assert model.get_xyz.shape[0] == 6 + 2 + 2 - 1
    for row in (0, 4):   # clones: exact copies of every attribute
        assert len(find_rows(model, "xyz", old["xyz"][row])) == 2
        for i in find_rows(model, "xyz", old["xyz"][row]):
            assert all(torch.equal(model.tensors[n][i], old[n][row]) for n in TENSOR_NAMES)
    for row in (1, 3, 5):
        assert len(find_rows(model, "xyz", old["xyz"][row])) == 1
    assert find_rows(model, "xyz", old["xyz"][2]) == []   # the split parent is gone
    children = find_rows(model, "f_dc", old["f_dc"][2])
    assert len(children) == 2
    for i in children:
        torch.testing.assert_close(model.get_scaling[i], torch.exp(old["scaling"][2]) / 1.6)
        for name in ("f_dc", "f_rest", "opacity", "rotation", "mask"):
            assert torch.equal(model.tensors[name][i], old[name][2]), name
    assert strategy.denom.shape == (9, 1) and strategy.denom.sum() == 0 and strategy.max_radii2D.shape == (9,)


def test_a_budget_keeps_the_largest_gradients_and_adds_one_gaussian_per_kept_row():
    # four hot rows (two small, two large), two cold; room for two more Gaussians
    model = make_model([0.05, 0.05, 0.5, 0.5, 0.05, 0.5])
    strategy = DensificationStrategy(percent_dense=0.01, max_gaussians=8)
    strategy.reset(6, "cpu")
    add_view(strategy, [[3e-4, 0.0], [9e-4, 0.0], [5e-4, 0.0], [8e-4, 0.0], [1e-4, 0.0], [1e-4, 0.0]])
    take_adam_step(model)
    old_xyz = model.get_xyz.detach().clone()

    counts = strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, None)

    assert counts == {"cloned": 1, "split": 1, "pruned": 0}   # rows 1 (9e-4, small) and 3 (8e-4, large)
    assert model.get_xyz.shape[0] == 8
    assert len(find_rows(model, "xyz", old_xyz[1])) == 2    # cloned
    assert find_rows(model, "xyz", old_xyz[3]) == []        # split: its parent is gone
    for row in (0, 2):                                       # hot, but weaker: untouched
        assert len(find_rows(model, "xyz", old_xyz[row])) == 1


def test_a_full_budget_densifies_nothing_but_still_prunes():
    model = make_model([0.05, 0.05, 0.5], opacities=[0.5, 0.001, 0.5])
    strategy = DensificationStrategy(percent_dense=0.01, max_gaussians=3)
    strategy.reset(3, "cpu")
    add_view(strategy, [[9e-4, 0.0], [9e-4, 0.0], [9e-4, 0.0]])
    counts = strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, None)
    assert counts == {"cloned": 0, "split": 0, "pruned": 1}
    assert model.get_xyz.shape[0] == 2
    # room again after the prune: the next densification may add one
    add_view(strategy, [[9e-4, 0.0], [9e-4, 0.0]])
    assert strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, None)["cloned"] == 1


def test_under_the_budget_densification_is_unchanged():
    grads = [[3e-4, 0.0], [1e-4, 0.0], [0.0, 3e-4], [1e-4, 1e-4]]
    results = []
    for budget in (None, 100):
        model = make_model([0.05, 0.05, 0.5, 0.5])
        strategy = DensificationStrategy(percent_dense=0.01, max_gaussians=budget)
        strategy.reset(4, "cpu")
        add_view(strategy, grads)
        results.append((strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, None), model.get_xyz.shape[0]))
    assert results[0] == results[1] == ({"cloned": 1, "split": 1, "pruned": 0}, 6)


def test_the_budget_is_the_flag_times_the_observed_pixels():
    opt = default_opt()
    assert opt.densify_budget == 0.05
    assert DensificationStrategy.from_options(opt, False, observed_pixels=18 * 128 * 96).max_gaussians == 11059
    opt.densify_budget = 0.0
    assert DensificationStrategy.from_options(opt, False, observed_pixels=1000).max_gaussians is None
    opt.densify_budget = -0.1
    with pytest.raises(ValueError, match="densify_budget"):
        DensificationStrategy.from_options(opt, False, observed_pixels=1000)


def test_gradient_averages_over_the_views_that_saw_the_gaussian():
    model = make_model([0.05, 0.05])
    strategy = DensificationStrategy()
    strategy.reset(2, "cpu")
    add_view(strategy, [[3e-4, 0.0], [3e-4, 0.0]])
    add_view(strategy, [[0.0, 0.0], [9.0, 9.0]], visible=[True, False])
    counts = strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, None)
    assert counts["cloned"] == 1   # mean 1.5e-4 for the first (seen twice), 3e-4 for the second


def test_percent_dense_sets_the_clone_split_boundary():
    model = make_model([0.15, 0.15])
    strategy = DensificationStrategy(percent_dense=0.02)   # boundary 0.2: both are small now
    strategy.reset(2, "cpu")
    add_view(strategy, [[1.0, 0.0], [1.0, 0.0]])
    assert strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, None)["cloned"] == 2


def test_densify_keeps_adam_state_of_kept_rows_and_zeroes_new_rows():
    model = make_model([0.05, 0.5, 0.05, 0.05], opacities=[0.5, 0.5, 0.001, 0.5])
    strategy = DensificationStrategy()
    strategy.reset(4, "cpu")
    add_view(strategy, [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    take_adam_step(model)
    take_adam_step(model)
    before = {name: {k: v.clone() for k, v in model.optimizer.state[model.tensors[name]].items()}
              for name in TENSOR_NAMES if name != "mask"}

    strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, None)
    # rows now: 0 and 3 kept (2 pruned: transparent; 1 split), then the clone of 0, then 2 children of 1
    assert model.get_xyz.shape[0] == 5
    for name, old in before.items():
        state = model.optimizer.state[model.tensors[name]]
        assert state["step"] == old["step"] == 2
        for key in ("exp_avg", "exp_avg_sq"):
            assert state[key].shape == model.tensors[name].shape
            assert torch.equal(state[key][:2], old[key][[0, 3]])
            assert torch.all(state[key][2:] == 0)
    take_adam_step(model)   # the optimizer keeps working after the edit


# --- split sampling -------------------------------------------------------------------------
def test_split_samples_follow_the_parent_gaussian():
    n = 20_000
    model = GaussianModel(0, 1, device="cpu")
    centre = torch.tensor([1.0, -2.0, 3.0])
    scale = torch.tensor([0.5, 0.2, 0.05])
    quaternion = torch.tensor([0.9, 0.3, -0.2, 0.25])
    model.cat_tensors({"xyz": centre.expand(n, 3), "f_dc": torch.zeros(n, 1, 3), "f_rest": torch.zeros(n, 0, 3),
                       "opacity": torch.zeros(n, 1), "scaling": torch.log(scale).expand(n, 3),
                       "rotation": quaternion.expand(n, 4), "mask": torch.ones(n, 1)})
    rows = split_rows(model, torch.ones(n, dtype=torch.bool))
    samples = rows["xyz"].double()
    assert samples.shape == (2 * n, 3)
    torch.testing.assert_close(torch.exp(rows["scaling"]), (scale / 1.6).expand(2 * n, 3))
    assert torch.equal(rows["mask"], torch.ones(2 * n, 1))

    covariance = model.get_covariance()[0].detach().double()   # xx xy xz yy yz zz of the parent
    i, j = torch.triu_indices(3, 3)
    sigma = torch.zeros(3, 3, dtype=torch.float64)
    sigma[i, j] = covariance
    sigma[j, i] = covariance
    centred = samples - centre.double()
    torch.testing.assert_close(centred.mean(0), torch.zeros(3, dtype=torch.float64), atol=0.01, rtol=0)
    empirical = centred.T @ centred / (2 * n)
    torch.testing.assert_close(empirical, sigma, atol=0.004, rtol=0)
    mahalanobis = (centred @ torch.linalg.inv(sigma) * centred).sum(1).sqrt()
    assert mahalanobis.max() < 7.0   # every sample lies within the parent Gaussian
    within = (mahalanobis < 2.5).double().mean().item()
    assert abs(within - chi2.cdf(2.5 ** 2, df=3)) < 0.01   # Mahalanobis² of a 3D normal is chi²(3)


# --- pruning --------------------------------------------------------------------------------
def test_prune_by_opacity_always_and_by_size_only_with_a_screen_limit():
    # rows: transparent, large in the world (> 0.1 x extent), large on screen, ordinary
    model = make_model([0.05, 1.5, 0.05, 0.05], opacities=[0.004, 0.5, 0.5, 0.5])
    xyz = model.get_xyz.detach().clone()
    strategy = DensificationStrategy()
    strategy.reset(4, "cpu")
    add_view(strategy, [[0.0, 0.0]] * 4, radii=[1, 5, 25, 20])
    assert strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, None)["pruned"] == 1
    assert torch.equal(model.get_xyz, xyz[1:])

    strategy.reset(3, "cpu")
    add_view(strategy, [[0.0, 0.0]] * 3, radii=[5, 25, 20])
    assert strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, 20)["pruned"] == 2
    assert torch.equal(model.get_xyz, xyz[3:])


def test_screen_size_pruning_can_be_switched_off():
    model = make_model([0.05, 0.05])
    strategy = DensificationStrategy(prune_by_screen_size=False)
    strategy.reset(2, "cpu")
    add_view(strategy, [[0.0, 0.0]] * 2, radii=[100, 1])
    assert strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, 20)["pruned"] == 0


def test_oversized_split_children_are_pruned_in_the_same_pass():
    model = make_model([1.7])   # children have scale 1.7 / 1.6 > 0.1 x extent
    strategy = DensificationStrategy()
    strategy.reset(1, "cpu")
    add_view(strategy, [[1.0, 0.0]])
    counts = strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, 20)
    assert counts == {"cloned": 0, "split": 1, "pruned": 2} and model.get_xyz.shape[0] == 0


def test_reset_opacity_caps_opacity_and_zeroes_its_moments():
    model = make_model([0.05] * 3, opacities=[0.9, 0.005, 0.3])
    take_adam_step(model)
    xyz_moments = model.optimizer.state[model.tensors["xyz"]]["exp_avg"].clone()
    opacity_before = model.get_opacity.detach().clone()
    DensificationStrategy().reset_opacity(model)
    torch.testing.assert_close(model.get_opacity[:, 0], torch.tensor([0.01, opacity_before[1, 0], 0.01]))
    state = model.optimizer.state[model.tensors["opacity"]]
    assert torch.all(state["exp_avg"] == 0) and torch.all(state["exp_avg_sq"] == 0)
    assert torch.equal(model.optimizer.state[model.tensors["xyz"]]["exp_avg"], xyz_moments)


def test_state_dict_round_trip():
    strategy = DensificationStrategy(percent_dense=0.03)
    strategy.reset(3, "cpu")
    add_view(strategy, [[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]], visible=[True, True, False], radii=[3, 4, 5])
    restored = DensificationStrategy()
    restored.load_state_dict(strategy.state_dict())
    assert restored.percent_dense == 0.03
    for key in ("xyz_gradient_accum", "denom", "max_radii2D"):
        assert torch.equal(getattr(restored, key), getattr(strategy, key))
    add_view(strategy, [[1.0, 0.0]] * 3)
    assert not torch.equal(restored.denom, strategy.denom)   # a copy, not shared storage


def test_model_size_mismatch_is_reported():
    model = make_model([0.05, 0.05])
    strategy = DensificationStrategy()
    strategy.reset(3, "cpu")
    with pytest.raises(ValueError, match="reset"):
        strategy.densify_and_prune(model, THRESHOLD, 0.005, EXTENT, None)


def test_step_decides_when_statistics_densification_and_resets_happen():
    calls = []

    class Recording(DensificationStrategy):
        def add_stats(self, *args):
            calls.append(("stats", self._it))

        def densify_and_prune(self, model, max_grad, min_opacity, extent, size_threshold):
            calls.append(("densify", self._it, size_threshold, max_grad))

        def reset_opacity(self, model, ceiling=0.01):
            calls.append(("reset", self._it))
    from types import SimpleNamespace
    opt = SimpleNamespace(percent_dense=0.01, prune_by_screen_size=False, densify_from_iter=2, densify_until_iter=9,
                          densification_interval=3, opacity_reset_interval=4, densify_grad_threshold=0.5,
                          densify_budget=0.0)
    strategy = Recording.from_options(opt, white_background=True, observed_pixels=1000)
    pkg = {"viewspace_points": None, "visibility_filter": None, "radii": None}
    for it in range(1, 13):
        strategy._it = it
        strategy.step(None, pkg, it, extent=1.0)
    assert [c[1] for c in calls if c[0] == "stats"] == list(range(1, 9))       # inside the window only
    assert [c[1:] for c in calls if c[0] == "densify"] == [(3, None, 0.5), (6, 20, 0.5)]  # screen limit after a reset
    assert [c[1] for c in calls if c[0] == "reset"] == [2, 4, 8]             # white background: also at densify_from_iter


@pytest.mark.parametrize("flag, value", [("densification_interval", 0), ("opacity_reset_interval", 0),
                                         ("percent_dense", -0.1), ("densify_grad_threshold", float("nan"))])
def test_options_out_of_range_are_refused_before_training(flag, value):
    """An interval of 0 used to train until the densification window and then divide by zero."""
    from types import SimpleNamespace
    options = dict(percent_dense=0.01, prune_by_screen_size=False, densify_from_iter=2, densify_until_iter=9,
                   densification_interval=3, opacity_reset_interval=4, densify_grad_threshold=0.5,
                   densify_budget=0.0)
    with pytest.raises(ValueError, match=f"--{flag} must be"):
        DensificationStrategy.from_options(SimpleNamespace(**{**options, flag: value}), white_background=False,
                                           observed_pixels=1000)
