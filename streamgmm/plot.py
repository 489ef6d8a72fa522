"""Pictures of fitted mixtures: convergence, component ellipses, model selection.

Needs matplotlib (``pip install 'streamgmm[plot]'``), imported only when a
function here is called. Every function draws on the ``ax`` it is given (or on a
new figure) and returns the axes, so pictures can be combined and saved with
:func:`save_figure` (or ``ax.figure.savefig(...)``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .covariance import full_covariances
from .outputs import PLOT_FORMAT, PNG_MARKER_KEY, write_output

SIGMA_LEVELS = (1, 2, 3)


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "streamgmm.plot needs matplotlib; install it with pip install 'streamgmm[plot]'"
        ) from error
    return plt


def _axes(ax):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=(6, 4.5), layout="constrained")
    return ax


def _history_of(run: Any) -> Mapping[str, Sequence[float]]:
    history = getattr(run, "history_", run)
    if not isinstance(history, Mapping) or not {"passes", "log_likelihood"} <= set(history):
        raise TypeError(
            "Expected a fitted GaussianMixture or a history dict with keys 'passes' and "
            f"'log_likelihood', got {type(run).__name__}"
        )
    return history


def plot_convergence(runs: Any, ax=None):
    """Mean log-likelihood against passes over the data.

    Parameters
    ----------
    runs : fitted model, history dict, or mapping of label to either
        A mapping draws one curve per entry on the same axes, e.g.
        ``{"batch EM": batch_model, "online EM": online_model}``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    if isinstance(runs, Mapping) and not {"passes", "log_likelihood"} <= set(runs):
        named = dict(runs)
    else:
        named = {None: runs}
    for label, run in named.items():
        history = _history_of(run)
        ax.plot(history["passes"], history["log_likelihood"], marker=".", label=label)
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("passes over the data")
    ax.set_ylabel("mean log-likelihood per row")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.set_title("Convergence")
    ax.grid(alpha=0.3)
    if any(label is not None for label in named):
        ax.legend()
    return ax


def _model_covariances(model: Any) -> np.ndarray:
    return full_covariances(model.covariances_, model.covariance_type, *model.means_.shape)


def principal_axes(model: Any) -> np.ndarray:
    """The two leading eigenvectors (2, d) of the fitted mixture's overall covariance
    ``sum_k w_k (Sigma_k + mu_k mu_k^T) - mu mu^T``."""
    weights, means = model.weights_, model.means_
    covariances = _model_covariances(model)
    centre = weights @ means
    deviations = means - centre
    total = np.einsum("k,kij->ij", weights, covariances) + np.einsum(
        "k,ki,kj->ij", weights, deviations, deviations
    )
    _, vectors = np.linalg.eigh(total)
    return vectors[:, ::-1][:, :2].T


def feature_labels(model: Any) -> list[str]:
    """The model's feature names (``feature_names_in_``), else "feature 0", "feature 1", ..."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(name) for name in names]
    return [f"feature {j}" for j in range(model.means_.shape[1])]


def feature_indices(model: Any, features: Sequence[int | str]) -> list[int]:
    """Feature indices from indices or the model's feature names (``ValueError``
    naming the unknown one and the known names)."""
    fitted = getattr(model, "feature_names_in_", None)
    names = [] if fitted is None else [str(name) for name in fitted]
    indices = []
    for feature in features:
        if isinstance(feature, str) and not feature.lstrip("-").isdigit():
            if feature not in names:
                known = ", ".join(names) if names else "none: the model has no feature names"
                raise ValueError(f"no feature named {feature!r}; the model's features: {known}")
            indices.append(names.index(feature))
        else:
            indices.append(int(feature))
    return indices


def projection(
    model: Any, features: Sequence[int | str] | str | None
) -> tuple[np.ndarray, list[str]]:
    """A (2, d) projection matrix and axis labels: two features (indices or the
    model's feature names), or the first two principal axes of the fitted
    mixture for ``"pca"`` (the default when the model has more than two features)."""
    d = model.means_.shape[1]
    if features is None:
        features = (0, 1) if d == 2 else "pca"
    if d == 1:
        raise ValueError("Ellipses need at least 2 features; the model has 1")
    if isinstance(features, str):
        if features != "pca":
            raise ValueError(f"features must be two indices or names, or 'pca', got {features!r}")
        return principal_axes(model), ["principal axis 1", "principal axis 2"]
    features = feature_indices(model, features)
    if len(features) != 2 or not all(0 <= index < d for index in features):
        raise ValueError(f"features must be two indices in [0, {d}), got {features}")
    if features[0] == features[1]:
        raise ValueError(f"features must be two different indices, got {features}")
    matrix = np.zeros((2, d))
    matrix[0, features[0]] = matrix[1, features[1]] = 1.0
    labels = feature_labels(model)
    return matrix, [labels[features[0]], labels[features[1]]]


def ellipse_outline(mean: np.ndarray, covariance: np.ndarray, sigma: float, n_points: int = 100):
    """Points (n_points, 2) on the ``sigma``-standard-deviation ellipse of a 2-D Gaussian."""
    values, vectors = np.linalg.eigh(covariance)
    angles = np.linspace(0.0, 2.0 * np.pi, n_points)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return mean + sigma * (circle * np.sqrt(np.maximum(values, 0.0))) @ vectors.T


def sample_for_plot(
    X: Any, n_rows: int, random_state: Any = 0, sample_dim: str | None = None, model: Any = None
):
    """A uniform sample (at most ``n_rows`` rows) of any supported input, read in
    one pass; with ``model``, of a table's columns the model was fitted on,
    after checking that X has the model's number of features."""
    from .hyperparameters import make_rng
    from .initialization import sample_rows
    from .inputs import as_rows, model_columns
    from .validation import check_n_features

    names = getattr(model, "feature_names_in_", None)
    data = as_rows(X, sample_dim, columns=model_columns(X, names))
    if model is not None:
        check_n_features(model, data.n_features)
    return sample_rows(data, n_rows, make_rng(random_state))


def plot_components(
    model: Any,
    X: Any = None,
    *,
    features: Sequence[int] | str | None = None,
    n_points: int = 5000,
    sigmas: Sequence[float] = SIGMA_LEVELS,
    random_state: Any = 0,
    true_means: np.ndarray | None = None,
    label: str | None = None,
    ax=None,
):
    """Components as 1-, 2- and 3-sigma ellipses over a sample of the data, on
    axes of equal scale (so ellipses keep their shape).

    Parameters
    ----------
    model : fitted GaussianMixture
    X : any supported input, optional
        Data to sample ``n_points`` rows from (one pass); without it, rows are
        drawn from the model itself.
    features : two feature indices, "pca", or None
        The plane to draw in; None means features (0, 1) for 2-D models and the
        first two principal axes of the mixture otherwise.
    true_means : array (K', d), optional
        Means the data were drawn from, marked with black crosses.
    label : str, optional
        Which fit this is (e.g. "batch EM"), for the title.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    model._check_is_fitted()
    matrix, labels = projection(model, features)
    ax = _axes(ax)
    if X is None:
        rows, _ = model.sample(n_points)
        source = "rows drawn from the model"
    else:
        rows = sample_for_plot(
            X, n_points, random_state, getattr(model, "sample_dim", None), model
        )
        source = f"{len(rows):,} sampled rows"
    points = rows @ matrix.T
    ax.scatter(points[:, 0], points[:, 1], s=2, c="0.55", alpha=0.4, linewidths=0, label=source)
    means = model.means_ @ matrix.T
    covariances = np.einsum("ij,kjl,ml->kim", matrix, _model_covariances(model), matrix)
    colors = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (mean, covariance) in enumerate(zip(means, covariances, strict=True)):
        color = colors[k % len(colors)]
        for number, sigma in enumerate(sigmas):
            outline = ellipse_outline(mean, covariance, sigma)
            name = f"component {k}: weight {model.weights_[k]:.2f}" if number == 0 else None
            ax.plot(outline[:, 0], outline[:, 1], color=color, lw=1.6 / sigma**0.5, label=name)
        ax.plot(*mean, marker="+", color=color, ms=10, mew=2)
    if true_means is not None:
        truth = np.asarray(true_means, dtype=np.float64) @ matrix.T
        ax.plot(truth[:, 0], truth[:, 1], ls="none", marker="x", color="k", ms=9, mew=2,
                label="true means")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    fit = f"{label}: " if label else ""
    ax.set_title(f"{fit}{len(means)} components, {'/'.join(map(str, sigmas))}-sigma ellipses")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, markerscale=1,
              borderaxespad=0)
    return ax


def plot_density(
    model: Any,
    X: Any = None,
    *,
    n_points: int = 5000,
    random_state: Any = 0,
    true_means: np.ndarray | None = None,
    label: str | None = None,
    bins: int = 60,
    ax=None,
):
    """A one-feature mixture: a histogram of a sample of the data (or of rows
    drawn from the model), the fitted density, and every weighted component
    w_k N(x | mu_k, sigma_k^2).

    Parameters are those of :func:`plot_components`; ``bins`` is the number of
    histogram bins. Returns the matplotlib Axes.
    """
    from .estep import e_step

    model._check_is_fitted()
    if model.means_.shape[1] != 1:
        raise ValueError(f"plot_density draws one feature; the model has {model.means_.shape[1]}")
    ax = _axes(ax)
    if X is None:
        rows, _ = model.sample(n_points)
        source = f"{len(rows):,} rows drawn from the model"
    else:
        rows = sample_for_plot(
            X, n_points, random_state, getattr(model, "sample_dim", None), model
        )
        source = f"{len(rows):,} sampled rows"
    values = np.asarray(rows, dtype=np.float64)[:, 0]
    ax.hist(values, bins=bins, density=True, color="0.8", edgecolor="0.6", lw=0.5, label=source)
    spread = np.sqrt(_model_covariances(model)[:, 0, 0])
    low = min(values.min(), (model.means_[:, 0] - 4 * spread).min())
    high = max(values.max(), (model.means_[:, 0] + 4 * spread).max())
    grid = np.linspace(low, high, 400)
    density, log_resp = e_step(grid[:, None], model._fitted_parameters())
    mixture = np.exp(density)
    colors = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    for k in range(model.means_.shape[0]):
        ax.plot(grid, mixture * np.exp(log_resp[:, k]), ls="--", color=colors[k % len(colors)],
                label=f"component {k}: weight {model.weights_[k]:.2f}")
    ax.plot(grid, mixture, color="k", lw=2, label="fitted density")
    if true_means is not None:
        for number, mean in enumerate(np.asarray(true_means, dtype=np.float64).ravel()):
            ax.axvline(mean, color="k", ls=":", lw=1, label="true means" if number == 0 else None)
    ax.set_xlabel("feature 0")
    ax.set_ylabel("density")
    fit = f"{label}: " if label else ""
    ax.set_title(f"{fit}{model.means_.shape[0]} components, histogram and fitted density")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    return ax


def plot_criterion(
    table: Any,
    criterion: str = "bic",
    *,
    n_components: Sequence[int] | None = None,
    ax=None,
):
    """A model-selection criterion against the number of components.

    Parameters
    ----------
    table : xarray.Dataset, array-like or mapping
        A Dataset with dimension ``n_components`` (and optionally
        ``covariance_type``) holding a variable named ``criterion``; or values of
        shape (n,) with ``n_components`` given; or a mapping of label (e.g.
        covariance type) to such values. The lowest value is marked.
    criterion : str, default="bic"
    n_components : sequence of int, optional
        Needed for array and mapping tables.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    curves, counts = _criterion_curves(table, criterion, n_components)
    ax = _axes(ax)
    best_label, best_index, best_value = None, 0, np.inf
    for label, values in curves.items():
        ax.plot(counts, values, marker="o", label=label)
        if np.isnan(values).all():
            continue
        index = int(np.nanargmin(values))
        if values[index] < best_value:
            best_label, best_index, best_value = label, index, values[index]
    ax.plot(
        counts[best_index],
        best_value,
        marker="*",
        ms=16,
        color="k",
        ls="none",
        label=f"lowest: K={counts[best_index]}" + (f", {best_label}" if best_label else ""),
    )
    ax.set_xlabel("number of components")
    ax.set_ylabel(criterion.upper())
    ax.set_xticks(counts)
    ax.set_title(f"Model selection by {criterion.upper()} (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def _criterion_curves(table, criterion, n_components):
    import xarray as xr

    if isinstance(table, xr.Dataset):
        if criterion not in table.data_vars:
            raise ValueError(
                f"The table has no variable {criterion!r}; it has {sorted(table.data_vars)}"
            )
        values = table[criterion]
        if "n_components" not in values.dims:
            raise ValueError(f"{criterion!r} has no dimension 'n_components': {values.dims}")
        counts = np.asarray(table["n_components"].values)
        others = [dim for dim in values.dims if dim != "n_components"]
        if not others:
            return {None: np.asarray(values.values, dtype=float)}, counts
        if len(others) > 1:
            raise ValueError(f"Expected at most one dimension besides n_components: {others}")
        other = others[0]
        values = values.transpose(other, "n_components")
        return {
            str(label): np.asarray(row, dtype=float)
            for label, row in zip(values[other].values, values.values, strict=True)
        }, counts
    if n_components is None:
        raise ValueError("n_components is needed when the table is not an xarray.Dataset")
    counts = np.asarray(n_components)
    curves = dict(table) if isinstance(table, Mapping) else {None: table}
    curves = {label: np.asarray(values, dtype=float) for label, values in curves.items()}
    for label, values in curves.items():
        if values.shape != counts.shape:
            raise ValueError(
                f"{label or criterion} has shape {values.shape}, n_components {counts.shape}"
            )
    return curves, counts


def plot_model(
    model: Any,
    X: Any = None,
    *,
    features=None,
    n_points: int = 5000,
    runs=None,
    true_means: np.ndarray | None = None,
    label: str | None = None,
):
    """A two-panel figure: convergence (of ``runs``, default the model itself)
    and the model over a sample of ``n_points`` rows of ``X``: ellipses (see
    :func:`plot_components`), or for one feature a histogram with the fitted
    density (see :func:`plot_density`). ``true_means`` are marked when given;
    ``label`` names the fit the right panel shows. Returns the matplotlib Figure."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    plot_convergence(model if runs is None else runs, ax=left)
    if model.means_.shape[1] >= 2:
        plot_components(model, X, features=features, n_points=n_points,
                        true_means=true_means, label=label, ax=right)
    else:
        plot_density(model, X, n_points=n_points, true_means=true_means, label=label, ax=right)
    return figure


def save_figure(
    figure_or_axes: Any, path: Any, dpi: int = 100, *, overwrite: bool = False
) -> None:
    """Save a Figure (or the Figure of an Axes) to ``path`` and close it.

    The format follows the suffix of ``path`` (PNG when it has none). A PNG
    carries a ``streamgmm-format`` text chunk, so a plot streamgmm wrote is
    replaced atomically; any other file at ``path`` (another PNG, a file in
    another format) is refused unless ``overwrite=True`` (see
    :mod:`streamgmm.outputs`). A file object ``path`` is written as it is.
    """
    from matplotlib.figure import Figure

    figure = figure_or_axes if isinstance(figure_or_axes, Figure) else figure_or_axes.figure
    try:
        if not isinstance(path, str | os.PathLike):
            figure.savefig(path, dpi=dpi)
            return
        image_format = Path(path).suffix.lstrip(".").lower() or "png"
        metadata = {PNG_MARKER_KEY: PLOT_FORMAT} if image_format == "png" else None
        write_output(
            path,
            PLOT_FORMAT,
            lambda temporary: figure.savefig(
                temporary, dpi=dpi, format=image_format, metadata=metadata
            ),
            overwrite=overwrite,
        )
    finally:
        _pyplot().close(figure)


__all__ = [
    "plot_convergence",
    "plot_components",
    "plot_density",
    "plot_criterion",
    "plot_model",
    "save_figure",
    "principal_axes",
    "ellipse_outline",
]
