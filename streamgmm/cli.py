"""The ``streamgmm`` command line.

Subcommands: ``demo`` (the main job on synthetic data), ``make-data``
(synthetic rows to try the others on), ``fit``, ``select``, ``predict``,
``score``, ``info`` and ``plot``. Bad input ends with a one-line message on
standard error and exit status 1 (2 for usage errors), never a traceback; set
``STREAMGMM_TRACEBACK=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from . import tables
from .choices import COVARIANCE_TYPES, variance_totals
from .criteria import CRITERIA
from .hyperparameters import (
    BAYESIAN_SETTINGS,
    BOTH,
    ONLINE_CHECKPOINT_BATCHES,
    SETTINGS,
    Setting,
    select_default,
)
from .outputs import (
    CRITERIA_FORMAT,
    CSV_MARKER,
    IMPUTED_FORMAT,
    MODEL_FORMAT,
    PLOT_FORMAT,
    PREDICTIONS_FORMAT,
    OutputExistsError,
    check_output,
    refuse_inputs,
    write_output,
)
from .validation import count

if TYPE_CHECKING:
    from .datasets import MixtureTruth
    from .mixture import GaussianMixture

# Modules that bring scikit-learn, Dask, xarray, Zarr or numba are imported by
# the commands that need them, inside the command: ``streamgmm --help`` and
# ``streamgmm info`` start in well under a second (tests/test_startup.py).


def option_label(value: Any) -> str:
    """How a command line spells a choice's value (yes/no for booleans, none for None)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "none" if value is None else str(value)


def option_help(setting: Setting) -> str:
    """A setting's command-line help: the first sentence of its help, without
    reST markup, with the algorithms it applies to when not both."""
    first = setting.help.split(". ")[0].rstrip(".").replace("``", "").replace('\\"', '"')
    first = re.sub(r":\w+:`~?([^`]+)`", r"\1", first)
    if setting.modes != BOTH and not any(mode in first.lower() for mode in setting.modes):
        first += f" ({', '.join(sorted(setting.modes))})"
    return first + "."


def click_type(rule: Any) -> click.ParamType | None:
    """The option type of a rule's plain values (None for a flag or free text)."""
    if rule.kind in ("int", "float"):
        low, high, low_open, high_open = rule.bounds
        low = None if low == -np.inf else low
        high = None if high == np.inf else high
        if low is None and high is None:
            return click.INT if rule.kind == "int" else click.FLOAT
        if rule.kind == "int":
            return click.IntRange(min=low, max=high)
        return click.FloatRange(min=low, max=high, min_open=low_open, max_open=high_open)
    if rule.kind == "choice":
        return click.Choice([option_label(option) for option in rule.options])
    return None


def setting_option(setting: Setting, command: str):
    """The click option of one setting for ``command`` ("fit", "bayes" or "select")."""
    names = (setting.cli or f"--{setting.name.replace('_', '-')}").split()
    default = select_default(setting) if command == "select" else setting.default
    keywords: dict[str, Any] = {"help": option_help(setting)}
    if setting.rule.kind == "bool":
        long = names[-1]
        if default:
            return click.option(f"{long}/--no-{long[2:]}", setting.name, default=True,
                                show_default=True, **keywords)
        return click.option(*names, setting.name, is_flag=True, **keywords)
    if isinstance(default, tuple):
        labels = [option_label(option) for option in setting.rule.options]
        keywords["help"] = keywords["help"].rstrip(".") + (
            f": one or several of {', '.join(labels)}, separated by commas.")
        return click.option(*names, setting.name, default=",".join(default), show_default=True,
                            metavar="METHODS", callback=_choices_callback(labels), **keywords)
    if setting.name == "n_components" and command != "select":
        return click.option(*names, setting.name, type=click_type(setting.rule), required=True,
                            **keywords)
    kind = click_type(setting.rule)
    if setting.rule.kind == "choice":
        labels = {option_label(option): option for option in setting.rule.options}
        keywords["callback"] = lambda context, parameter, value: labels[value]
        default = option_label(default)
        if len(labels) > 4:  # a list in words reads better than [a|b|c|d|e]
            keywords["metavar"] = "METHOD" if setting.name == "init_params" else "NAME"
            keywords["help"] = keywords["help"].rstrip(".") + ": " + ", ".join(
                f"{label} (default)" if label == default else label for label in labels
            ) + "."
            return click.option(*names, setting.name, type=kind, default=default, **keywords)
    return click.option(*names, setting.name, type=kind, default=default,
                        show_default=default is not None, **keywords)


def _choices_callback(labels: list[str]):
    def parse(context: Any, parameter: Any, value: str) -> tuple[str, ...]:
        chosen = tuple(name.strip() for name in value.split(",") if name.strip())
        unknown = [name for name in chosen if name not in labels]
        if unknown or not chosen:
            raise click.BadParameter(f"{value!r}: choose from {', '.join(labels)}")
        return chosen
    return parse


def settings_options(command: str, settings: tuple[Setting, ...] = SETTINGS):
    """Every setting of a table (:data:`streamgmm.hyperparameters.SETTINGS`, or
    :data:`~streamgmm.hyperparameters.BAYESIAN_SETTINGS` for "bayes") that has an
    option, as options of ``command`` ("fit" and "bayes": all of them; "select":
    those that :func:`streamgmm.select` takes), in the table's order."""
    chosen = [
        setting for setting in settings
        if setting.cli is not None and (command != "select" or setting.select)
    ]

    def decorate(function):
        for setting in reversed(chosen):
            function = setting_option(setting, command)(function)
        return function

    return decorate


NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5")

LOG_LIKELIHOOD_FORMAT = ".10g"
"""How every command prints a mean log-likelihood per row (fit, score, info, select)."""


def one_line(error: BaseException) -> str:
    """An exception as a single line: its type for bare errors, its message otherwise."""
    message = " ".join(str(error).split())
    if isinstance(error, KeyError | FileNotFoundError) or not message:
        return f"{type(error).__name__}: {message}" if message else type(error).__name__
    return message


INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT, as shells report it)."""

EXIT_AT_ONCE = "exit_at_once"
"""Key of the context object under which the command line (:func:`console`)
asks to exit on Ctrl-C without waiting for the worker threads of Dask's local
scheduler: one may be compiling a kernel, tens of seconds that Ctrl-C should
not have to wait for. Everything streamgmm writes is replaced atomically, so
nothing is left half-written."""

INTERRUPT_HINT = "streamgmm.interrupt_hint"
"""Key of ``click.Context.meta`` under which a command leaves what to say if it
is interrupted (e.g. how to resume)."""


class CommandGroup(click.Group):
    """A click group that turns errors from the library into one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            hint = ctx.meta.get(INTERRUPT_HINT, "")
            click.echo(f"\ninterrupted{'; ' + hint if hint else ''}", err=True)
            if (ctx.obj or {}).get(EXIT_AT_ONCE):
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(INTERRUPTED)
            raise click.exceptions.Exit(INTERRUPTED) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except OutputExistsError as error:
            raise click.ClickException(error.message("--overwrite")) from error
        except Exception as error:
            if os.environ.get("STREAMGMM_TRACEBACK"):
                raise
            raise click.ClickException(one_line(error)) from error


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="streamgmm")
def main() -> None:
    """Fit Gaussian mixture models to data larger than memory.

    DATA arguments are a Parquet or CSV table (a file, a folder of them or a
    glob pattern; --columns chooses the columns), a Zarr store holding a 2-D
    array (rows are samples), a path to an array inside a Zarr store, a .npy
    file, or a netCDF file or Zarr dataset with --variable naming a 2-D
    variable.
    """


# ----------------------------------------------------------------- helpers
def data_options(function):
    """--columns, --variable and --sample-dim, for commands that read DATA."""
    function = click.option(
        "--columns",
        default=None,
        metavar="NAMES",
        help="Columns of a Parquet or CSV table to use, separated by commas "
        "(default: all its numeric columns).",
    )(function)
    function = click.option(
        "--sample-dim",
        default=None,
        help="Dimension of --variable that indexes samples (default: its first).",
    )(function)
    return click.option(
        "--variable",
        default=None,
        help="Variable of a netCDF file or Zarr dataset to use (2-D: samples x features).",
    )(function)


def weights_option(function):
    """--weights, for commands that fit or score DATA."""
    return click.option(
        "--weights",
        default=None,
        metavar="PATH_OR_COLUMN",
        help="Row weights (a row of weight w counts as w rows): a Zarr store holding one "
        "1-D array with a value per row of DATA, or the name of a column of a Parquet or "
        "CSV table DATA (then not a feature).",
    )(function)


def scheduler_option(function):
    return click.option(
        "--scheduler",
        "scheduler",
        default=None,
        metavar="ADDRESS",
        help="Dask scheduler address (e.g. tcp://host:8786); default: the local scheduler.",
    )(function)


def open_data(
    path: str,
    variable: str | None,
    sample_dim: str | None,
    columns: str | None = None,
    weights: str | None = None,
    model: Any = None,
):
    """DATA as something :func:`streamgmm.inputs.as_rows` accepts: a zarr.Array, a
    :class:`~streamgmm.tables.TableSource` of a table's chosen columns (said on
    standard output; never the --weights column), or a
    lazy DataArray with samples along its first dimension."""
    from .inputs import open_zarr_array

    if tables.table_format(path) and (os.path.exists(path) or "*" in path):
        if variable is not None or sample_dim is not None:
            raise click.UsageError("--variable and --sample-dim are for netCDF and Zarr data")
        return open_table(path, columns, weights, model)
    if columns is not None:
        raise click.UsageError("--columns is for Parquet and CSV tables")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file or directory: {path!r}")
    if path.lower().endswith(".npy"):
        if variable is not None or sample_dim is not None:
            raise click.UsageError("--variable and --sample-dim are for netCDF and Zarr data")
        return np.load(path, mmap_mode="r", allow_pickle=False)
    if variable is None:
        if path.lower().endswith(NETCDF_SUFFIXES):
            raise click.UsageError(
                f"{path} looks like a netCDF file; name a variable with --variable"
            )
        if sample_dim is not None:
            raise click.UsageError("--sample-dim needs --variable")
        array = open_zarr_array(path)
        if array.ndim != 2:
            raise ValueError(
                f"{path} holds a {array.ndim}-D array of shape {array.shape}; streamgmm needs "
                "a 2-D array (samples, features): write the rows as one 2-D array, or open "
                "it as a dataset variable with --variable and --sample-dim"
            )
        return array
    dataset = open_dataset(path)
    if variable not in dataset.data_vars:
        raise ValueError(
            f"{path} has no variable {variable!r}; it has {sorted(map(str, dataset.data_vars))}"
        )
    array = dataset[variable]
    if array.ndim != 2:
        raise ValueError(
            f"variable {variable!r} has dims {array.dims}; streamgmm fit needs a 2-D variable "
            "(samples, features): stack the sample dimensions first "
            "(see examples/xarray_climate.py)"
        )
    if sample_dim is not None:
        if sample_dim not in array.dims:
            raise ValueError(f"--sample-dim {sample_dim!r} is not a dimension of {array.dims}")
        array = array.transpose(sample_dim, ...)
    return array


def open_table(
    path: str, columns: str | None, weights: str | None = None, model: Any = None
):
    """The table at ``path`` with the columns chosen by --columns (default: the
    features of ``model`` if it was fitted on named columns, else the table's
    numeric ones but the --weights column) as a lazy Dask frame, after saying
    which columns are used (and which look like identifiers or labels)."""
    names = None if columns is None else [name.strip() for name in columns.split(",")]
    fitted = getattr(model, "feature_names_in_", None)
    if names is None and fitted is not None:
        names = [str(name) for name in fitted]
        how = "the model's features"
    else:
        how = "as chosen" if names else "all its numeric columns"
    source = tables.table_source(path, names)
    if weights is not None and weights in source.columns:
        source = tables.table_source(path, [name for name in source.columns if name != weights])
        how += f" but the weights {weights!r}"
    note = f"; not used: {', '.join(source.skipped)}" if source.skipped else ""
    click.echo(f"columns of {path}: {', '.join(source.columns)} ({how}{note})")
    suspects = [] if model is not None else tables.identifier_columns(source)
    if suspects:
        click.echo(
            f"note: {', '.join(map(repr, suspects))} looks like an identifier or a label, not "
            "a measurement; leave it out with --columns", err=True,
        )
    return source


def open_dataset(path: str):
    """A netCDF file or Zarr dataset, opened lazily (Dask-backed)."""
    import xarray as xr

    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file or directory: {path!r}")
    if os.path.isdir(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # not consolidated
            return xr.open_zarr(path)
    return xr.open_dataset(path, chunks={})


@contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """Use the Dask scheduler at ``address`` inside the block (nothing when None).

    Connecting gives up after Dask's ``distributed.comm.timeouts.connect``
    (30 s unless configured, e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s``).
    """
    if address is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError as error:
        raise click.ClickException(
            "--scheduler needs dask.distributed: pip install 'streamgmm[distributed]'"
        ) from error
    import dask

    timeout = dask.config.get("distributed.comm.timeouts.connect")
    click.echo(f"connecting to the Dask scheduler at {address} (giving up after {timeout}; "
               "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT sets it)", err=True)
    try:
        client = Client(address)
    except (OSError, TimeoutError) as error:
        raise click.ClickException(
            f"could not connect to the Dask scheduler at {address}: {one_line(error)}"
        ) from error
    with client:
        yield client


@contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Report warnings raised inside the block as one line each on standard error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield
    seen = set()
    for warning in caught:
        message = f"warning: {one_line(warning.message)}"
        if message not in seen:
            seen.add(message)
            click.echo(message, err=True)


def progress_level(quiet: bool, verbose: bool) -> int:
    """``verbose`` for the estimator: bars on a terminal unless --quiet; lines with -v."""
    return 0 if quiet else 2 if verbose else 1


def overwrite_option(function):
    return click.option(
        "--overwrite",
        is_flag=True,
        help="Replace whatever is at the output path, not only an output of the same kind "
        "that streamgmm wrote (never an input of the command, the current folder or the "
        "home folder).",
    )(function)


def check_paths_differ(**paths: Path | None) -> None:
    """Refuse two options naming the same file (e.g. --checkpoint and --out)."""
    seen: dict[str, str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise ValueError(
                f"{seen[real]} and {option} name the same path {path}; choose two paths"
            )
        seen[real] = option


def progress_options(function):
    function = click.option(
        "-v", "--verbose", is_flag=True, help="Also print progress lines when not on a terminal."
    )(function)
    return click.option("-q", "--quiet", is_flag=True, help="No progress bar.")(function)


# -------------------------------------------------------------------- fit
def fitted_and_saved(model: Any, X: Any, data: str, out: Path, overwrite: bool,
                     scheduler: str | None, **fit_arguments: Any) -> float:
    """Fit ``model`` on the scheduler, save it to --out (checked again: the fit
    may have taken long); returns the fit's seconds."""
    from .io import save

    started = time.perf_counter()
    with connected(scheduler), warnings_as_lines():
        model.fit(X, **fit_arguments)
    elapsed = time.perf_counter() - started
    check_output(out, MODEL_FORMAT, overwrite=overwrite, inputs=[data])
    save(model, out, overwrite=overwrite)
    return elapsed


def checked_fit_paths(data: str, out: Path, checkpoint: Path | None, overwrite: bool,
                      variable: str | None, sample_dim: str | None, columns: str | None,
                      weights: str | None) -> Any:
    """Refuse an --out or --checkpoint that clashes (with each other, the data or
    a file of another kind) before any work, then open DATA."""
    check_paths_differ(**{"--checkpoint": checkpoint, "--out": out})
    check_output(out, MODEL_FORMAT, overwrite=overwrite, inputs=[data])
    if checkpoint is not None:
        refuse_inputs(checkpoint, [data])
    return open_data(data, variable, sample_dim, columns, weights)


@main.command()
@click.argument("data")
@settings_options("fit")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="Checkpoint file, written after every iteration (batch) or every "
    "--checkpoint-every mini-batches and every pass (online); a rerun resumes from it.",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=ONLINE_CHECKPOINT_BATCHES,
    show_default=True,
    help="Mini-batches between checkpoints (online, with --checkpoint).",
)
@data_options
@weights_option
@scheduler_option
@progress_options
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write the model (a Zarr store). A model file there is replaced; "
    "anything else is refused unless --overwrite.",
)
@overwrite_option
def fit(
    data: str,
    checkpoint: Path | None,
    checkpoint_every: int,
    columns: str | None,
    variable: str | None,
    sample_dim: str | None,
    weights: str | None,
    scheduler: str | None,
    quiet: bool,
    verbose: bool,
    out: Path,
    overwrite: bool,
    **settings: Any,
) -> None:
    """Fit a mixture to DATA and save the model to --out."""
    from .mixture import GaussianMixture

    X = checked_fit_paths(data, out, checkpoint, overwrite, variable, sample_dim, columns,
                          weights)
    model = GaussianMixture(**settings, verbose=progress_level(quiet, verbose))
    click.get_current_context().meta[INTERRUPT_HINT] = (
        f"nothing was written to {out}; run the same command again to resume from the "
        f"checkpoint {checkpoint}" if checkpoint is not None else
        f"nothing was written to {out}; with --checkpoint FILE a fit saves its state as it "
        "goes and the same command run again resumes from it"
    )
    elapsed = fitted_and_saved(model, X, data, out, overwrite, scheduler, sample_weight=weights,
                               checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    click.echo(
        f"fitted {model.n_components} components ({model.covariance_type}) to {data} in "
        f"{elapsed:.1f} s: "
        f"{model.n_iter_} iterations, converged={model.converged_}, mean log-likelihood "
        f"{model.lower_bound_:{LOG_LIKELIHOOD_FORMAT}} (at the last iteration's E-step); "
        f"model written to {out}"
    )


# ----------------------------------------------------------------- bayes
@main.command()
@click.argument("data")
@settings_options("bayes", BAYESIAN_SETTINGS)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Checkpoint file, written after every pass; a rerun resumes from it.")
@data_options
@weights_option
@scheduler_option
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), required=True,
              help="Where to write the model (a Zarr store).")
@overwrite_option
def bayes(data: str, checkpoint: Path | None, columns: str | None, variable: str | None,
          sample_dim: str | None, weights: str | None, scheduler: str | None, out: Path,
          overwrite: bool, **settings: Any) -> None:
    """Fit a variational Bayesian mixture (BayesianGaussianMixture) to DATA: it
    chooses how many of the K components it needs; save the model to --out."""
    from .bayesian import BayesianGaussianMixture

    X = checked_fit_paths(data, out, checkpoint, overwrite, variable, sample_dim, columns,
                          weights)
    model = BayesianGaussianMixture(**settings)
    elapsed = fitted_and_saved(model, X, data, out, overwrite, scheduler, sample_weight=weights,
                               checkpoint=checkpoint)
    click.echo(
        f"fitted up to {model.n_components} components ({model.covariance_type}) to {data} in "
        f"{elapsed:.1f} s: {model.n_components_effective_} hold at least "
        f"{model.weight_threshold:g} of the weight; {model.n_iter_} iterations, "
        f"converged={model.converged_}, lower bound "
        f"{model.lower_bound_:{LOG_LIKELIHOOD_FORMAT}}; model written to {out}"
    )


# ------------------------------------------------------------------ select
def component_counts(text: str) -> list[int]:
    """``"2-8"`` or ``"2,3,5"`` (or both, ``"2-4,8"``) as a list of counts >= 1."""
    counts: list[int] = []
    try:
        for item in text.split(","):
            low, _, high = item.strip().partition("-")
            counts.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not like 2-8 or 2,3,5") from None
    if not counts or min(counts) < 1:
        raise click.BadParameter(f"{text!r} names no component counts >= 1")
    return counts


@main.command()
@click.argument("data")
@click.option(
    "-k",
    "--n-components",
    "counts",
    default="2-10",
    show_default=True,
    metavar="COUNTS",
    help="Component counts to try: a range 2-8, a list 2,3,5, or both.",
)
@click.option(
    "--covariance-types",
    default="full,diag",
    show_default=True,
    metavar="TYPES",
    help=f"Covariance types to try, separated by commas ({', '.join(COVARIANCE_TYPES)}).",
)
@click.option(
    "--criterion",
    type=click.Choice(CRITERIA),
    default="bic",
    show_default=True,
    help="Lowest wins: bic, aic, or icl (BIC plus the classification entropy).",
)
@settings_options("select")
@data_options
@weights_option
@scheduler_option
@progress_options
@click.option(
    "--table",
    "table_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write every candidate's criteria to this CSV file.",
)
@click.option(
    "--plot",
    "plot_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the criterion against the number of components to this PNG file.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write the chosen model (a Zarr store), as fit does.",
)
@overwrite_option
def select(
    data: str,
    counts: str,
    covariance_types: str,
    criterion: str,
    columns: str | None,
    variable: str | None,
    sample_dim: str | None,
    weights: str | None,
    scheduler: str | None,
    quiet: bool,
    verbose: bool,
    table_out: Path | None,
    plot_out: Path | None,
    out: Path,
    overwrite: bool,
    **settings: Any,
) -> None:
    """Fit a grid of candidate mixtures to DATA in shared passes, print their
    criteria (a table on standard output), and save the one with the lowest
    criterion to --out (see streamgmm.select)."""
    from .io import save
    from .selection import select as select_model

    sizes = component_counts(counts)
    types = [name.strip() for name in covariance_types.split(",") if name.strip()]
    unknown = [name for name in types if name not in COVARIANCE_TYPES]
    if unknown or not types:
        raise click.BadParameter(
            f"{covariance_types!r}: choose from {', '.join(COVARIANCE_TYPES)}",
            param_hint="--covariance-types",
        )
    check_paths_differ(**{"--out": out, "--table": table_out, "--plot": plot_out})
    if table_out is not None:
        check_output(table_out, CRITERIA_FORMAT, overwrite=overwrite, inputs=[data])
    if plot_out is not None:
        plotting = plot_module()
        check_output(plot_out, PLOT_FORMAT, overwrite=overwrite, inputs=[data])
    check_output(out, MODEL_FORMAT, overwrite=overwrite, inputs=[data])
    X = open_data(data, variable, sample_dim, columns, weights)
    started = time.perf_counter()
    with connected(scheduler), warnings_as_lines():
        best, table = select_model(
            X, sizes, types, criterion, sample_weight=weights,
            verbose=progress_level(quiet, verbose), sample_dim=sample_dim, **settings,
        )
    elapsed = time.perf_counter() - started
    rows = candidate_rows(table, best)
    click.echo(format_candidates(rows, criterion))
    check_output(out, MODEL_FORMAT, overwrite=overwrite, inputs=[data])
    save(best, out, overwrite=overwrite)
    if table_out is not None:
        write_table(rows, table_out, overwrite, [data])
        click.echo(f"criteria of every candidate written to {table_out}")
    if plot_out is not None:
        figure = plotting.plot_criterion(table, criterion)
        plotting.save_figure(figure.figure if hasattr(figure, "figure") else figure, plot_out,
                             overwrite=overwrite)
        click.echo(f"criterion plot written to {plot_out}")
    click.echo(
        f"chose {best.n_components} components ({best.covariance_type}) by {criterion} "
        f"in {elapsed:.1f} s ({table.attrs['n_passes']} passes over {data}); model written "
        f"to {out}"
    )


def write_table(rows: list[dict[str, Any]], path: Path, overwrite: bool, inputs: list) -> None:
    """The candidates' criteria as a CSV file, one row per candidate, after a
    marker line (``# streamgmm-format: streamgmm.criteria``), written atomically."""
    import csv

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="") as handle:
            handle.write(f"{CSV_MARKER.decode()}{CRITERIA_FORMAT}\n")
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    write_output(path, CRITERIA_FORMAT, write, overwrite=overwrite, inputs=inputs)


def candidate_rows(table: Any, best: GaussianMixture) -> list[dict[str, Any]]:
    """One dict per candidate of a :func:`streamgmm.select` table, marking the best."""
    rows = []
    for K in table["n_components"].values:
        for covariance_type in table["covariance_type"].values:
            cell = table.sel(n_components=K, covariance_type=covariance_type)
            rows.append({
                "n_components": int(K),
                "covariance_type": str(covariance_type),
                **{name: float(cell[name]) for name in CRITERIA},
                "log_likelihood": float(cell["lower_bound"]),
                "n_iter": int(cell["n_iter"]),
                "converged": bool(cell["converged"]),
                "chosen": bool(
                    K == best.n_components and covariance_type == best.covariance_type
                ),
            })
    return rows


def format_candidates(rows: list[dict[str, Any]], criterion: str) -> str:
    """The candidates as an aligned text table, the chosen one marked with *."""
    header = (
        f"  {'K':>3} {'covariance':<10} {'bic':>14} {'aic':>14} {'icl':>14} "
        f"{'loglik/row':>12} {'iter':>5}"
    )
    lines = [header]
    for row in rows:
        mark = "*" if row["chosen"] else " "
        lines.append(
            f"{mark} {row['n_components']:>3} {row['covariance_type']:<10} {row['bic']:>14.6g} "
            f"{row['aic']:>14.6g} {row['icl']:>14.6g} "
            f"{row['log_likelihood']:>12.7g} "
            f"{row['n_iter']:>5}"
        )
    lines.append(f"(* marks the chosen candidate: the lowest {criterion})")
    return "\n".join(lines)


# ----------------------------------------------------------------- predict
@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("data")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write 'labels' and, with --proba, 'responsibilities': a Zarr store, "
    "a Parquet file for a table, or a CSV file (name ending in .csv) for any DATA. "
    "Predictions streamgmm wrote there are replaced; anything else is refused unless "
    "--overwrite.",
)
@click.option("--proba", is_flag=True, help="Also write the responsibilities (samples x K).")
@click.option(
    "--log-likelihood",
    "log_likelihood",
    is_flag=True,
    help="Also write every row's log-likelihood under MODEL (score_samples; low values "
    "mark outliers).",
)
@data_options
@scheduler_option
@overwrite_option
def predict(
    model_path: Path,
    data: str,
    out: Path,
    proba: bool,
    log_likelihood: bool,
    columns: str | None,
    variable: str | None,
    sample_dim: str | None,
    scheduler: str | None,
    overwrite: bool,
) -> None:
    """Write the label of every row of DATA (and its responsibilities and
    log-likelihood), chunk by chunk: to a Zarr store chunked like DATA, for a
    Parquet or CSV table to a Parquet file with the table's index, one row group
    per part of the table, or to a CSV file (--out ending in .csv)."""
    from .io import load, save_predictions

    table = tables.table_format(data) is not None or str(out).lower().endswith(".csv")
    if table and str(out).lower().rstrip("/").endswith(".zarr"):
        raise click.UsageError(
            "predictions of a table are written as a Parquet file; name --out e.g. labels.parquet"
        )
    files = tables.table_files(data, tables.table_format(data)) if (
        tables.table_format(data)) else [data]
    kind_inputs = [model_path, *files]
    check_output(out, PREDICTIONS_FORMAT, overwrite=overwrite, inputs=kind_inputs)
    model = load(model_path)
    X = open_data(data, variable, sample_dim, columns, model=model)
    with connected(scheduler), warnings_as_lines():
        if table:
            n_rows = tables.save_table_predictions(
                model, X, out, proba=proba, log_likelihood=log_likelihood,
                overwrite=overwrite, inputs=kind_inputs,
            )
        else:
            save_predictions(model, X, out, proba=proba, log_likelihood=log_likelihood,
                             overwrite=overwrite)
            n_rows = X.shape[0]
    shapes = [f"labels ({n_rows},)"]
    if proba:
        shapes.append(f"responsibilities ({n_rows}, {model.n_components})")
    if log_likelihood:
        shapes.append(f"log_likelihood ({n_rows},)")
    click.echo(f"wrote {', '.join(shapes)} to {out}")


# ------------------------------------------------------------------ impute
@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("data")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write 'imputed' (DATA with every NaN replaced): a Zarr store. An "
    "imputed store streamgmm wrote there is replaced; anything else is refused unless "
    "--overwrite, and DATA or MODEL always.",
)
@data_options
@scheduler_option
@overwrite_option
def impute(
    model_path: Path,
    data: str,
    out: Path,
    columns: str | None,
    variable: str | None,
    sample_dim: str | None,
    scheduler: str | None,
    overwrite: bool,
) -> None:
    """Write DATA with every missing value (NaN) replaced by its conditional mean
    under MODEL given the row's observed values, chunk by chunk, to a Zarr store
    chunked like DATA (a dataset variable keeps its dims and coordinates),
    whatever --missing the model was fitted with."""
    from .io import load, save_imputed

    if tables.table_format(data) is not None:
        raise click.UsageError(
            "impute writes Zarr stores from Zarr or netCDF DATA; for a table, use "
            "GaussianMixture.impute in Python"
        )
    check_output(out, IMPUTED_FORMAT, overwrite=overwrite, inputs=[model_path, data])
    model = load(model_path)
    X = open_data(data, variable, sample_dim, columns)
    with connected(scheduler), warnings_as_lines():
        shape = save_imputed(model, X, out, overwrite=overwrite, inputs=[model_path, data])
    click.echo(f"wrote imputed {shape} to {out}")


# ------------------------------------------------------------------- score
@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("data")
@data_options
@weights_option
@scheduler_option
def score(
    model_path: Path,
    data: str,
    columns: str | None,
    variable: str | None,
    sample_dim: str | None,
    weights: str | None,
    scheduler: str | None,
) -> None:
    """Print the mean log-likelihood per row of DATA under MODEL (one pass; with
    --weights, the weighted mean)."""
    from .io import load

    model = load(model_path)
    X = open_data(data, variable, sample_dim, columns, weights, model=model)
    with connected(scheduler), warnings_as_lines():
        value = model.score(X, sample_weight=weights)
    click.echo(f"{value:{LOG_LIKELIHOOD_FORMAT}}")


# -------------------------------------------------------------------- info
@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
def info(model_path: Path) -> None:
    """Print a readable summary of MODEL."""
    from .io import read_summary

    click.echo(describe_model(read_summary(model_path)))


@main.command("compile")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(min=1),
              help="Processes compiling at once.")
def compile_command(jobs: int) -> None:
    """Compile every kernel into numba's disk cache, ahead of the first fit.

    Without it, a process that finds the cache empty runs the kernels
    interpreted and compiles those that get hot. Run it once in a deployment
    image or a cluster's shared environment (docs/cluster.md); the cache is
    kept beside the package, or in NUMBA_CACHE_DIR."""
    from .precompile import compile_kernels

    failed = False
    for group, seconds, output in compile_kernels(jobs):
        if output:
            failed = True
            click.echo(output.rstrip(), err=True)
        click.echo(f"{group} kernels: {'failed' if output else 'compiled'} in {seconds:.1f} s")
    if failed:
        raise SystemExit(1)


def describe_model(model: GaussianMixture, max_features: int = 6) -> str:
    """A few lines describing a fitted model: shape, fit, and every component."""
    K, d = model.means_.shape
    lines = [
        f"{getattr(model, 'estimator', type(model).__name__)}: {count(K, 'component')}, "
        f"{count(d, 'feature')}, covariance_type={model.covariance_type}",
        f"fit: algorithm={model.algorithm}, {model.n_iter_} iterations, "
        f"converged={model.converged_}, mean log-likelihood "
        f"{model.lower_bound_:{LOG_LIKELIHOOD_FORMAT}}",
    ]
    if hasattr(model, "n_components_effective_"):
        lines.append(f"{model.n_components_effective_} components hold at least "
                     f"{model.weight_threshold:g} of the weight")
    history = getattr(model, "history_", {})
    if history.get("elapsed") and np.isfinite(history["elapsed"][-1]):
        lines.append(
            f"its EM iterations took {history['elapsed'][-1]:.2f} s (without finding the "
            "start, reading the data's shape and saving: fit's own time is longer)"
        )
    shown = min(d, max_features)
    more = f" ... (+{d - shown} features)" if d > shown else ""
    names = getattr(model, "feature_names_in_", None)
    titles = [f"mean[{j}]" if names is None else str(names[j])[:10] for j in range(shown)]
    header = "  ".join(f"{title:>10}" for title in titles)
    lines.append(f"{'component':>9}  {'weight':>7}  {header}  {'spread':>8}")
    spreads = component_spreads(model)
    for k in range(K):
        means = "  ".join(f"{value:>10.4g}" for value in model.means_[k, :shown])
        lines.append(f"{k:>9}  {model.weights_[k]:>7.4f}  {means}{more}  {spreads[k]:>8.4g}")
    lines.append("spread: square root of the mean variance over features")
    return "\n".join(lines)


def component_spreads(model: GaussianMixture) -> np.ndarray:
    """sqrt(trace(Sigma_k) / d) for every component, shape (K,)."""
    K, d = model.means_.shape
    traces = variance_totals(model.covariances_, model.covariance_type, K, d)
    return np.sqrt(traces / d)


# -------------------------------------------------------------------- plot
@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("data", required=False)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="PNG file to write. A plot streamgmm wrote there is replaced; anything else is "
    "refused unless --overwrite.",
)
@click.option(
    "--features",
    nargs=2,
    default=None,
    metavar="A B",
    help="Two features to draw, by name (for a model fitted on named columns) or index "
    "(default: the first two principal axes).",
)
@click.option(
    "--n-points",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Rows to sample for the scatter.",
)
@data_options
@overwrite_option
def plot(
    model_path: Path,
    data: str | None,
    out: Path,
    features: tuple[str, str] | None,
    n_points: int,
    columns: str | None,
    variable: str | None,
    sample_dim: str | None,
    overwrite: bool,
) -> None:
    """Draw MODEL's convergence and its components (over a sample of DATA, or of
    rows drawn from the model) to a PNG file."""
    from .io import load

    plotting = plot_module()
    inputs = [model_path] if data is None else [model_path, data]
    check_output(out, PLOT_FORMAT, overwrite=overwrite, inputs=inputs)
    model = load(model_path)
    X = None if data is None else open_data(data, variable, sample_dim, columns, model=model)
    figure = plotting.plot_model(
        model, X, features=features or None, n_points=n_points, label=Path(model_path).name
    )
    check_output(out, PLOT_FORMAT, overwrite=overwrite, inputs=inputs)
    plotting.save_figure(figure, out, overwrite=overwrite)
    click.echo(f"wrote {out}")


def plot_module():
    """:mod:`streamgmm.plot` drawing with the file-only Agg backend, or a one-line
    error when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as error:
        raise click.ClickException(
            "plotting needs matplotlib: pip install 'streamgmm[plot]'"
        ) from error
    matplotlib.use("Agg")
    from . import plot

    return plot


# --------------------------------------------------------------- make-data
@main.command("make-data")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--n-samples", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Rows to write.")
@click.option("-k", "--n-components", type=click.IntRange(min=1), default=5, show_default=True,
              help="Components of the random mixture the rows are drawn from.")
@click.option("--n-features", type=click.IntRange(min=1), default=3, show_default=True,
              help="Features per row.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=25_000, show_default=True,
              help="Rows per chunk of the store.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of mixture and rows.")
@overwrite_option
def make_data(
    out: Path,
    n_samples: int,
    n_components: int,
    n_features: int,
    chunk_rows: int,
    seed: int,
    overwrite: bool,
) -> None:
    """Write rows drawn from a random Gaussian mixture to OUT, a Zarr store, to try
    the other commands on. Rows that make-data wrote there are replaced."""
    from .datasets import random_mixture, write_mixture_zarr

    truth = random_mixture(n_components, n_features, random_state=seed)
    write_mixture_zarr(
        out, n_samples, truth, chunk_rows=chunk_rows, random_state=seed, overwrite=overwrite
    )
    click.echo(
        f"wrote {n_samples:,} rows x {count(n_features, 'feature')}, drawn from a mixture of "
        f"{n_components} Gaussians, to {out} (chunks of {min(chunk_rows, n_samples):,} rows)"
    )


# -------------------------------------------------------------------- demo
@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the Zarr store and the plot (default: a temporary folder for the "
    "store, removed afterwards, and the plot in the current folder).",
)
@click.option(
    "--n-samples",
    type=click.IntRange(min=1),
    default=2_000_000,
    show_default=True,
    help="Rows to generate.",
)
@click.option(
    "--n-components", type=click.IntRange(min=1), default=5, show_default=True,
    help="Mixture components.",
)
@click.option(
    "--n-features", type=click.IntRange(min=1), default=4, show_default=True,
    help="Features per row.",
)
@click.option(
    "--chunk-rows", type=click.IntRange(min=1), default=250_000, show_default=True,
    help="Rows per Zarr chunk.",
)
@click.option("--seed", default=1, show_default=True, help="Seed for data and fit.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PNG to write (default: streamgmm-demo.png in --out or the current folder).",
)
@click.option("--no-plot", is_flag=True, help="Skip the plot.")
@progress_options
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace whatever is at mixture.zarr and the plot's path, not only what an "
    "earlier demo wrote there.",
)
def demo(
    out_dir: Path | None,
    n_samples: int,
    n_components: int,
    n_features: int,
    chunk_rows: int,
    seed: int,
    plot_path: Path | None,
    no_plot: bool,
    quiet: bool,
    verbose: bool,
    overwrite: bool,
) -> None:
    """Write a synthetic mixture to a Zarr store, fit it out of core on the local
    Dask scheduler, compare the fits with the truth, and plot them."""
    from .datasets import random_mixture, write_mixture_zarr
    from .mixture import ConvergenceWarning

    if plot_path is None and not no_plot:
        plot_path = (out_dir or Path.cwd()) / "streamgmm-demo.png"
    if plot_path is not None:
        check_output(plot_path, PLOT_FORMAT, overwrite=overwrite)
    with tempfile.TemporaryDirectory(prefix="streamgmm-demo-") as scratch:
        folder = out_dir if out_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        store = folder / "mixture.zarr"
        truth = random_mixture(n_components, n_features, separation=4.0, random_state=seed)
        started = time.perf_counter()
        write_mixture_zarr(
            store,
            n_samples,
            truth,
            chunk_rows=chunk_rows,
            random_state=seed,
            overwrite=overwrite,
        )
        megabytes = n_samples * n_features * 8 / 1e6
        where = (
            store
            if out_dir is not None
            else "a temporary Zarr store (removed at the end; --out FOLDER keeps it)"
        )
        click.echo(
            f"wrote {n_samples:,} rows x {count(n_features, 'feature')} ({megabytes:.0f} MB, "
            f"chunks of "
            f"{chunk_rows:,} rows) to {where} in {time.perf_counter() - started:.1f} s"
        )
        seconds = warm_up(Path(scratch) / "warm-up.zarr", truth, seed)
        click.echo(
            f"compiled first: both fits ran on {WARM_UP_ROWS:,} rows in {seconds:.1f} s, "
            "so numba's compiling (or loading its cache) is not in the times below"
        )
        runs = {}
        for name, model in demo_models(n_components, seed, progress_level(quiet, verbose)):
            started = time.perf_counter()
            with warnings_as_lines():
                if model.tol == 0:
                    warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(store)
            elapsed = time.perf_counter() - started
            runs[name] = (model, elapsed, model.score(store))
        click.echo(comparison_table(runs, truth))
        click.echo(online_summary(runs))
        if plot_path is not None:
            try:
                plotting = plot_module()
            except click.ClickException as error:
                click.echo(f"plot skipped: {error.message}", err=True)
                return
            plotting.save_figure(
                demo_figure(plotting, runs, store, truth), plot_path, overwrite=overwrite
            )
            click.echo(f"plot written to {plot_path}")


def demo_figure(plotting: Any, runs: dict, store: Path, truth: MixtureTruth):
    """The demo's picture: every fit's convergence, and the first fit (batch EM)
    over a sample of the store with the true means marked."""
    name, (model, _, _) = next(iter(runs.items()))
    histories = {label: fitted for label, (fitted, _, _) in runs.items()}
    return plotting.plot_model(
        model, store, runs=histories, true_means=truth.means, label=f"{name} fit"
    )


ONLINE_DEMO_PASSES = 2
"""The demo's online fit runs this many passes (no tol test, so no convergence warning)."""

WARM_UP_ROWS = 20_000
"""Rows of the store the demo fits once before its timed fits."""


def warm_up(path: Path, truth: MixtureTruth, seed: int) -> float:
    """Fit the demo's models once to a small store of the same mixture with the
    kernels compiled at their first call (``STREAMGMM_KERNELS=compiled``, unless
    set), so that they are compiled (or loaded from numba's cache) before the
    timed fits, which would otherwise compile them when they get hot; returns
    the seconds it took."""
    from .datasets import write_mixture_zarr

    started = time.perf_counter()
    write_mixture_zarr(path, WARM_UP_ROWS, truth, chunk_rows=WARM_UP_ROWS // 2, random_state=seed)
    chosen = "STREAMGMM_KERNELS" in os.environ
    os.environ.setdefault("STREAMGMM_KERNELS", "compiled")
    try:
        for _, model in demo_models(truth.weights.shape[0], seed, verbose=0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.set_params(max_iter=2).fit(path)
    finally:
        if not chosen:
            del os.environ["STREAMGMM_KERNELS"]
    return time.perf_counter() - started


def demo_models(n_components: int, seed: int, verbose: int) -> list[tuple[str, GaussianMixture]]:
    """The fits the demo compares, by name."""
    from .mixture import GaussianMixture

    return [
        (
            "batch EM",
            GaussianMixture(n_components, tol=1e-5, random_state=seed, verbose=verbose),
        ),
        (
            "online EM",
            GaussianMixture(
                n_components,
                algorithm="online",
                tol=0.0,
                max_iter=ONLINE_DEMO_PASSES,
                random_state=seed,
                verbose=verbose,
            ),
        ),
    ]


def comparison_table(runs: dict, truth: MixtureTruth) -> str:
    """One row per fit: passes, seconds, mean log-likelihood on all rows, and the
    largest errors of the matched means, weights and covariances."""
    header = (
        f"{'fit':<10} {'passes':>7} {'seconds':>8} {'loglik/row':>11} "
        f"{'mean err':>9} {'weight err':>10} {'cov err':>8}"
    )
    lines = [header, "-" * len(header)]
    for name, (model, elapsed, loglik) in runs.items():
        errors = recovery_errors(model, truth)
        passes = model.history_["passes"][-1] if model.history_["passes"] else 0
        lines.append(
            f"{name:<10} {passes:>7.3g} {elapsed:>8.1f} {loglik:>11.5f} "
            f"{errors['means']:>9.4f} {errors['weights']:>10.5f} {errors['covariances']:>8.4f}"
        )
    lines.append(
        "seconds: the fit alone (numba compiled beforehand); errors: largest absolute "
        "error of a mean coordinate and of a weight, largest relative (Frobenius) error "
        "of a covariance, components matched by their means"
    )
    return "\n".join(lines)


def online_summary(runs: dict) -> str:
    """One line: online EM's time as a share of batch EM's, and how far its
    log-likelihood per row is from batch EM's."""
    _, batch_seconds, batch_loglik = runs["batch EM"]
    _, online_seconds, online_loglik = runs["online EM"]
    gap = batch_loglik - online_loglik
    side = "below" if gap > 0 else "above"
    return (
        f"online EM took {online_seconds / batch_seconds:.2f} of batch EM's time; its "
        f"log-likelihood is {abs(gap):.5f} nats per row {side} batch EM's"
    )


def recovery_errors(model: GaussianMixture, truth: MixtureTruth) -> dict[str, float]:
    """How far a fitted model is from the parameters the data were drawn from."""
    from .covariance import full_covariances
    from .datasets import match_components

    pairs = match_components(truth.means, model.means_)
    covariances = full_covariances(model.covariances_, model.covariance_type, *model.means_.shape)
    covariance_errors = np.linalg.norm(
        covariances[pairs] - truth.covariances, axis=(1, 2)
    ) / np.linalg.norm(truth.covariances, axis=(1, 2))
    return {
        "means": float(np.abs(model.means_[pairs] - truth.means).max()),
        "weights": float(np.abs(model.weights_[pairs] - truth.weights).max()),
        "covariances": float(covariance_errors.max()),
    }


if __name__ == "__main__":
    main()


def console() -> None:
    """The ``streamgmm`` command (console script and ``python -m streamgmm``):
    :func:`main`, exiting at once on Ctrl-C (:data:`EXIT_AT_ONCE`)."""
    main(prog_name="streamgmm", obj={EXIT_AT_ONCE: True})


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
