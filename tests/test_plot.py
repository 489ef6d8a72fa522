"""Every plot renders to a valid PNG; the geometry helpers are right."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from unconverged import fit_warning_if_unconverged  # noqa: E402

from streamgmm import GaussianMixture  # noqa: E402
from streamgmm.datasets import make_mixture, write_mixture_zarr  # noqa: E402
from streamgmm.plot import (  # noqa: E402
    ellipse_outline,
    plot_components,
    plot_convergence,
    plot_criterion,
    plot_model,
    principal_axes,
    save_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_width=300, min_height=200):
    with open(path, "rb") as handle:
        assert handle.read(8) == PNG_SIGNATURE
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    height, width = image.shape[:2]
    assert width >= min_width and height >= min_height
    # not a blank canvas: several distinct colours were drawn
    assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 10


@pytest.fixture(scope="module")
def fitted():
    X, _, truth = make_mixture(3000, n_components=3, n_features=3, random_state=2)
    return GaussianMixture(3, random_state=0, tol=1e-6).fit(X), X


def test_convergence_png_with_two_runs(fitted, tmp_path):
    model, X = fitted
    other = GaussianMixture(3, random_state=1, init_params="random", max_iter=15).fit(X)
    ax = plot_convergence({"kmeans start": model, "random start": other})
    lines = ax.get_lines()
    assert len(lines) == 2
    np.testing.assert_array_equal(lines[0].get_ydata(), model.history_["log_likelihood"])
    np.testing.assert_array_equal(lines[1].get_xdata(), other.history_["passes"])
    save_figure(ax, tmp_path / "convergence.png")
    assert_png(tmp_path / "convergence.png")


def test_components_png_over_a_zarr_sample(fitted, tmp_path):
    model, _ = fitted
    truth_model_data = tmp_path / "data.zarr"
    from streamgmm.datasets import random_mixture

    write_mixture_zarr(
        truth_model_data, 5000, random_mixture(3, 3, random_state=2), chunk_rows=1000
    )
    ax = plot_components(model, str(truth_model_data), features=(0, 2), n_points=800)
    assert ax.get_xlabel() == "feature 0" and ax.get_ylabel() == "feature 2"
    scatter = ax.collections[0]
    assert scatter.get_offsets().shape == (800, 2)
    # 3 ellipses per component plus its centre marker
    assert len(ax.get_lines()) == 3 * (3 + 1)
    save_figure(ax, tmp_path / "components.png")
    assert_png(tmp_path / "components.png")


def test_one_sigma_ellipse_has_the_right_axes():
    covariance = np.array([[4.0, 0.0], [0.0, 1.0]])
    outline = ellipse_outline(np.array([1.0, -1.0]), covariance, sigma=2.0, n_points=400)
    np.testing.assert_allclose(outline[:, 0].max() - 1.0, 4.0, rtol=1e-4)
    np.testing.assert_allclose(outline[:, 1].max() + 1.0, 2.0, rtol=1e-4)


def test_principal_axes_follow_the_spread_of_the_mixture():
    X = np.random.default_rng(0).normal(size=(4000, 3)) * [1.0, 10.0, 0.1]
    model = GaussianMixture(1, covariance_type="diag").fit(X)
    axes = principal_axes(model)
    assert axes.shape == (2, 3)
    np.testing.assert_allclose(np.abs(axes[0]), [0, 1, 0], atol=1e-3)
    np.testing.assert_allclose(np.abs(axes[1]), [1, 0, 0], atol=1e-3)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_components_png_for_other_covariance_types(covariance_type, tmp_path):
    X, _, _ = make_mixture(2000, n_components=2, n_features=2, random_state=4)
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    ax = plot_components(model, X)
    save_figure(ax, tmp_path / "c.png")
    assert_png(tmp_path / "c.png")


def test_criterion_png_from_a_dataset_and_from_arrays(tmp_path):
    counts = np.arange(1, 7)
    bic = np.array([[50.0, 30, 20, 22, 25, 29], [60.0, 35, 24, 19, 21, 26]])
    table = xr.Dataset(
        {"bic": (("covariance_type", "n_components"), bic)},
        coords={"n_components": counts, "covariance_type": ["full", "diag"]},
    )
    ax = plot_criterion(table)
    best = ax.get_lines()[-1]
    assert best.get_xdata()[0] == 4 and best.get_ydata()[0] == 19.0
    assert "diag" in best.get_label()
    save_figure(ax, tmp_path / "bic.png")
    assert_png(tmp_path / "bic.png")

    with_gaps = table.copy(deep=True)
    with_gaps["bic"][1, :] = np.nan  # a covariance type whose fits all failed
    assert plot_criterion(with_gaps).get_lines()[-1].get_xdata()[0] == 3

    ax = plot_criterion(bic[0], "aic", n_components=counts)
    assert ax.get_lines()[-1].get_xdata()[0] == 3
    assert ax.get_ylabel() == "AIC"
    save_figure(ax, tmp_path / "aic.png")
    assert_png(tmp_path / "aic.png")


def test_criterion_rejects_a_table_without_the_criterion():
    table = xr.Dataset({"aic": (("n_components",), [1.0, 2.0])}, coords={"n_components": [1, 2]})
    with pytest.raises(ValueError, match="no variable 'bic'"):
        plot_criterion(table, "bic")


def test_model_figure_png(fitted, tmp_path):
    model, X = fitted
    figure = plot_model(model, X)
    save_figure(figure, tmp_path / "model.png")
    assert_png(tmp_path / "model.png", min_width=1000, min_height=400)


# ------------------------------------------------- issue 18: the demo's picture (Must show 4)
def demo_figure_of(tmp_path, n_components, n_features):
    """The demo's figure for a small store of a mixture of that shape, with the
    fitted batch EM model and the truth."""
    import streamgmm.plot as plotting
    from streamgmm.cli import demo_figure, demo_models
    from streamgmm.datasets import random_mixture

    truth = random_mixture(n_components, n_features, separation=4.0, random_state=1)
    store = tmp_path / "rows.zarr"
    write_mixture_zarr(store, 20_000, truth, chunk_rows=5000)
    runs = {}
    for name, model in demo_models(n_components, seed=1, verbose=0):
        fit_warning_if_unconverged(model, str(store))
        runs[name] = (model, 0.0, model.score(str(store)))
    return demo_figure(plotting, runs, store, truth), runs["batch EM"][0], truth


def test_the_demo_figure_of_one_feature_shows_histogram_density_and_components(tmp_path):
    figure, model, truth = demo_figure_of(tmp_path, 3, 1)
    convergence, right = figure.axes[:2]
    assert right.get_title().startswith("batch EM fit: 3 components, histogram")
    bars = right.patches
    assert len(bars) == 60
    area = sum(bar.get_width() * bar.get_height() for bar in bars)
    assert area == pytest.approx(1.0, abs=1e-9)  # a density histogram
    lines = {line.get_label(): line for line in right.get_lines()}
    density = lines["fitted density"]
    grid = density.get_xdata()
    np.testing.assert_allclose(
        density.get_ydata(), np.exp(model.score_samples(grid[:, None])), rtol=1e-10
    )
    components = [lines[f"component {k}: weight {model.weights_[k]:.2f}"] for k in range(3)]
    np.testing.assert_allclose(
        sum(line.get_ydata() for line in components), density.get_ydata(), rtol=1e-10
    )
    for k, line in enumerate(components):  # each is w_k N(x | mu_k, sigma_k^2)
        sigma = np.sqrt(model.covariances_[k].ravel()[0])
        expected = model.weights_[k] * np.exp(
            -0.5 * ((grid - model.means_[k, 0]) / sigma) ** 2
        ) / (sigma * np.sqrt(2 * np.pi))
        np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-8, atol=1e-300)
    marked = sorted(
        line.get_xdata()[0] for line in right.get_lines() if line.get_linestyle() == ":"
    )
    np.testing.assert_allclose(marked, np.sort(truth.means.ravel()))
    save_figure(figure, tmp_path / "demo.png")
    assert_png(tmp_path / "demo.png", min_width=1000, min_height=400)


def test_the_demo_figure_of_four_features_marks_the_truth_on_equal_axes(tmp_path):
    figure, model, truth = demo_figure_of(tmp_path, 4, 4)
    convergence, right = figure.axes[:2]
    assert right.get_title().startswith("batch EM fit: 4 components")
    assert right.get_aspect() == 1.0  # equal scales: ellipses keep their shape
    (truth_line,) = [line for line in right.get_lines() if line.get_label() == "true means"]
    assert truth_line.get_marker() == "x"
    projected = truth.means @ principal_axes(model).T
    np.testing.assert_allclose(truth_line.get_xdata(), projected[:, 0])
    np.testing.assert_allclose(truth_line.get_ydata(), projected[:, 1])
    assert len(right.texts) == 0  # component labels live in the legend, beside the axes
    legend = right.get_legend()
    assert legend.get_bbox_to_anchor().x0 >= right.get_window_extent().x1
    assert [text.get_text() for text in legend.get_texts()][1:5] == [
        f"component {k}: weight {model.weights_[k]:.2f}" for k in range(4)
    ]
    ticks = convergence.get_xticks()
    assert np.array_equal(ticks, np.round(ticks))  # whole passes
    assert convergence.yaxis.get_major_formatter().get_useOffset() is False
    figure.canvas.draw()
    assert convergence.yaxis.get_major_formatter().get_offset() == ""
