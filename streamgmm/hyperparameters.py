"""The estimator's hyper-parameters, defined once in a table of settings
(``SETTINGS``, one :class:`Setting` each: name, type, default, rule, help, the
algorithms it applies to, whether ``select`` and the command line take it).
The estimator's signature, docstring and checks, :func:`streamgmm.select`, the
``streamgmm fit`` and ``select`` options and this reference are made from it;
fits read the frozen :data:`FitConfig` built from ``get_params()``. Also here:
the user-given starting parameters (``weights_init``, ``means_init``,
``precisions_init``) checked against the data."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from .choices import (
    ACCELERATION_METHODS,
    ALGORITHMS,
    COVARIANCE_TYPES,
    INIT_METHODS,
    MISSING_OPTIONS,
    WEIGHT_PRIOR_TYPES,
    parameter_shape,
)
from .validation import (
    BOOLEAN,
    N_JOBS,
    OPTIONAL_ARRAY,
    OPTIONAL_STRING,
    RANDOM_STATE,
    VERBOSE,
    Rule,
    integer_in,
    one_of,
    real_in,
)

PERSIST_OPTIONS = ("auto", True, False)

BATCH_SIZE = 512
LEARNING_DECAY = 0.6
LEARNING_OFFSET = 0.0
"""Defaults of online EM, chosen by ``benchmarks/online_vs_batch.py`` (docs/online.md)."""

ONLINE_CHECKPOINT_BATCHES = 100
"""Mini-batches between two checkpoints of an online fit (``fit(checkpoint_every=)``),
which are written at chunk ends."""

PARTIAL_FIT_RECORD = 1000
"""``partial_fit`` keeps the last this many entries of ``lower_bounds_`` and
``history_``: a model kept current for a long time must not grow, nor copy an
ever longer record on every call (at 10^5 entries that copy took 9 ms, 3.6 times
a 512-row ``partial_fit``)."""

SAME = "same as fit"
"""``Setting.select_default`` of a setting whose default in ``select`` is its
default in ``GaussianMixture``."""

SELECT_INIT_PARAMS = ("hierarchical", "k-means||")
"""Default starts of :func:`streamgmm.select`: every candidate is started both
ways and keeps its better run (docs/initialization.md has the measurements:
neither start alone found the best optimum on all the data sets tried)."""

SELECT_TOL = 1e-5
"""Default ``tol`` of :func:`streamgmm.select`, tighter than ``GaussianMixture``'s
1e-3: criteria compare log-likelihoods across candidates to within a few nats,
and at 1e-3 (and 1e-4) EM stopped short of mclust's optimum on faithful and
diabetes (docs/initialization.md)."""

BOTH = ("batch", "online")
BATCH = ("batch",)
ONLINE = ("online",)


class Setting(NamedTuple):
    """One hyper-parameter, defined once: the estimator's signature and checks,
    :func:`streamgmm.select`, ``streamgmm fit`` / ``select`` options and the API
    docs are all made from these entries (docs/architecture.md)."""

    name: str
    annotation: str
    """Its type, as the signature shows it."""
    default: Any
    rule: Rule
    """What a value must be (checked when fitting starts)."""
    help: str
    """numpydoc description; its first sentence is the command line's help."""
    modes: tuple = BOTH
    """The algorithms it applies to ("batch", "online")."""
    select: bool = False
    """:func:`streamgmm.select` takes it (the same for every candidate)."""
    select_default: Any = SAME
    cli: str | None = ""
    """Option of ``streamgmm fit`` (and ``select`` if ``select``): "" spells it
    from the name (``--reg-covar``), None gives none, else its declarations
    separated by spaces (``"-k --n-components"``)."""
    partial_fit: bool = False
    """Checked again on every ``partial_fit`` call of a fitted model."""
    changes_result: bool = True
    """False for settings that never change a fit's numbers (a checkpoint
    need not match them)."""


SETTINGS: tuple[Setting, ...] = (
    Setting("n_components", "int", 1, integer_in(1), "Mixture components.",
            cli="-k --n-components"),
    Setting("covariance_type", "str", "full", one_of(*COVARIANCE_TYPES),
            "Shape of the component covariances.", partial_fit=True),
    Setting("tol", "float", 1e-3, real_in(0.0),
            "Stop when the per-sample mean log-likelihood changes by less than this.",
            select=True, select_default=SELECT_TOL),
    Setting("reg_covar", "float", 1e-6, real_in(0.0),
            "Added to the diagonal of every covariance.", select=True, partial_fit=True),
    Setting("max_iter", "int", 100, integer_in(0),
            "EM iterations (passes over the data) per initialisation. 0 fits the "
            "initialisation only, as scikit-learn (``n_iter_`` 0, ``converged_`` False, "
            "``lower_bound_`` -inf, no warning, the last initialisation's parameters).",
            select=True),
    Setting("n_init", "int", 1, integer_in(1),
            "Initialisations; the one with the best final lower bound is kept.", select=True),
    Setting("init_params", "str", "k-means||", one_of(*INIT_METHODS),
            "How starting parameters are found. See :mod:`streamgmm.initialization` and "
            "docs/initialization.md for how many passes each takes. The default differs "
            "from scikit-learn's ``\"kmeans\"``: measured on well-separated mixtures of 20 "
            "and 50 components, ``\"k-means||\"`` found every mean in every seed where "
            "``\"kmeans\"`` found them in 43% and 0% of seeds. ``\"hierarchical\"`` is "
            "mclust's start (:mod:`streamgmm.agglomeration`). :func:`streamgmm.select` "
            "takes one method or several.",
            select=True, select_default=SELECT_INIT_PARAMS),
    Setting("weights_init", "Any", None, OPTIONAL_ARRAY,
            "User-given starting weights, shape (n_components,).", cli=None),
    Setting("means_init", "Any", None, OPTIONAL_ARRAY,
            "User-given starting means, shape (n_components, n_features).", cli=None),
    Setting("precisions_init", "Any", None, OPTIONAL_ARRAY,
            "User-given starting precisions, shaped by ``covariance_type``.", cli=None),
    Setting("random_state", "Any", None, RANDOM_STATE,
            "Seed of the starts and of online EM's shuffles (default: unseeded). None "
            "draws from NumPy's global random state, as scikit-learn.",
            select=True),
    Setting("warm_start", "bool", False, BOOLEAN,
            "Continue from the fitted parameters on the next ``fit``.", cli=None),
    Setting("verbose", "int", 0, VERBOSE,
            "1: a progress bar on a terminal; 2: also a line every ``verbose_interval`` "
            "iterations when not on a terminal.", select=True, cli=None,
            changes_result=False),
    Setting("verbose_interval", "int", 10, integer_in(1),
            "Iterations between two progress lines (``verbose=2``).", cli=None,
            changes_result=False),
    Setting("algorithm", "str", "batch", one_of(*ALGORITHMS),
            "batch: exact EM, one pass over the data per iteration; online: stepwise EM "
            "over mini-batches (``max_iter`` counts passes). ``\"online\"`` moves the "
            "parameters after every mini-batch (:mod:`streamgmm.online`)."),
    Setting("batch_size", "int", BATCH_SIZE, integer_in(1),
            "Rows per mini-batch of online EM (``fit`` and ``partial_fit``).",
            modes=ONLINE, partial_fit=True),
    # (0.5, 1]: the online steps then sum to infinity and their squares do not
    Setting("learning_decay", "float", LEARNING_DECAY, real_in(0.5, 1.0, low_open=True),
            "``alpha`` of the online step size ``rho_t = (t + t0) ** -alpha``.",
            modes=ONLINE, partial_fit=True),
    Setting("learning_offset", "float", LEARNING_OFFSET, real_in(0.0),
            "``t0`` of the online step size.", modes=ONLINE, partial_fit=True),
    Setting("step_floor", "float", 0.0, real_in(0.0, 1.0, high_open=True),
            "Smallest online step size, so that the model keeps tracking data that drift: "
            "``rho_t = max((t + t0) ** -alpha, step_floor)``. A positive floor makes "
            "stepwise EM forget old rows at the rate ``step_floor`` per mini-batch (a "
            "memory of about ``1 / step_floor`` batches), so that a model kept current by "
            "``partial_fit`` tracks a distribution that drifts; 0 lets the steps decrease "
            "for ever.", modes=ONLINE, partial_fit=True),
    Setting("averaging", "bool", False, BOOLEAN,
            "Report the Polyak-Ruppert average of the online statistics (from the end "
            "of the burn-in on).", modes=ONLINE, partial_fit=True),
    Setting("shuffle", "bool", True, BOOLEAN,
            "Draw the mini-batches in a fresh random order every pass (online ``fit``). "
            "Seeded by ``random_state``: from all rows for NumPy input, else from the rows "
            "of each chunk, the chunks in random order. ``False`` keeps the stored order "
            "inside chunks, which for data sorted by time or class makes mini-batches "
            "unrepresentative. ``partial_fit`` always takes rows as given.", modes=ONLINE),
    Setting("init_sample_size", "int", 100_000, integer_in(1),
            "Rows sampled (in one pass) for the k-means-based initialisations.",
            select=True),
    Setting("sample_dim", "str | None", None, OPTIONAL_STRING,
            "DataArray inputs: the dimension that indexes samples (default the first).",
            select=True, cli=None),
    Setting("persist", "bool | str", "auto", one_of(*PERSIST_OPTIONS),
            "Keep the row-chunked input in (cluster) memory for the whole fit instead of "
            "reading it on every pass. ``True`` persists any input with ``dask.persist`` "
            "(use it when the data fit in the workers' memory); ``False`` streams every "
            "pass from the source (Zarr store, Dask graph); ``\"auto\"`` persists only "
            "in-memory NumPy input and only under a ``dask.distributed`` client, so that it "
            "is shipped to the workers once per fit rather than once per pass. See "
            "``docs/cluster.md``.", changes_result=False),
    Setting("float32_products", "bool", False, BOOLEAN,
            "Float32 input, full covariances: products in float32 (faster; about 1e-6 "
            "relative accuracy). The E-step's and statistics' products in float32 (sums in "
            "float64), about 1.6 to 1.8 times faster per iteration (docs/benchmarks.md) "
            "but parameters accurate to about 1e-6 relative, not 1e-13; off by default "
            "because float32 data far from the origin then no longer fit like the same "
            "data centred. Ignored otherwise.", select=True, partial_fit=True),
    Setting("acceleration", "str | None", None, one_of(None, *ACCELERATION_METHODS),
            "Batch EM in fewer passes to the same fit: damped Anderson (daarem) or SQUAREM "
            "(``max_iter`` counts passes). Never lowers the log-likelihood "
            "(:mod:`streamgmm.acceleration`).", modes=BATCH, select=True),
    Setting("n_online_passes", "int", 0, integer_in(0),
            "Batch EM: passes of online EM from each start before batch EM (counted in "
            "``max_iter``, ``n_iter_`` and ``history_``, not ``lower_bounds_``).",
            modes=BATCH, cli="--online-passes"),
    Setting("missing", "str", "raise", one_of(*MISSING_OPTIONS),
            "What a NaN in X means: raise (an error naming the rows) or marginalize (a "
            "missing value). With ``\"marginalize\"`` every row is used through its observed "
            "coordinates (exact EM for values missing at random, Ghahramani & Jordan 1994; "
            ":mod:`streamgmm.missing`), rows with nothing observed are skipped and counted "
            "(``n_empty_rows_``), and prediction, scores and :meth:`impute` take NaN too. "
            "Infinities are errors either way. The fit reads the data once more first, to "
            "check that every column has an observed value, and starts from the rows with "
            "their gaps filled by the column means.",
            select=True, partial_fit=True),
    Setting("n_jobs", "int | None", None, N_JOBS,
            "Threads of the local Dask scheduler for the passes over the data (-1: one per "
            "core). None leaves Dask's configuration alone: one thread per core unless "
            "``dask.config.set(num_workers=...)`` says otherwise (scikit-learn's None means "
            "1). The workers of a ``dask.distributed`` cluster are not affected.",
            select=True, cli="--threads", changes_result=False),
)
"""Every hyper-parameter of :class:`streamgmm.GaussianMixture`, in signature
order (the first is positional, the rest keyword-only)."""

SETTING = {setting.name: setting for setting in SETTINGS}
SETTING_NAMES = tuple(SETTING)

OPTIONAL_REAL = Rule(
    "a real number or None",
    lambda value: value is None or (np.isscalar(value) and not isinstance(value, str | bool)),
    kind="float", bounds=(-np.inf, np.inf, False, False),
)


def _shared(name: str, help: str | None = None, cli: str | None = "") -> Setting:
    """A setting of :class:`~streamgmm.GaussianMixture`'s table, with this
    estimator's help text where its meaning differs, and its option of
    ``streamgmm bayes`` ("" spelt from the name, None for none)."""
    setting = SETTING[name]
    return setting._replace(help=help or setting.help, cli=setting.cli if cli == "" else cli)


BAYESIAN_SETTINGS: tuple[Setting, ...] = (
    _shared("n_components", "Upper bound on the number of components; those the data do not "
            "need end with negligible weight (``n_components_effective_``)."),
    _shared("covariance_type"),
    _shared("tol", "Stop when the lower bound (a sum over rows) moves by less."),
    _shared("reg_covar", "Added to the diagonal of every component's scatter per row of "
            "weight (scikit-learn's meaning)."),
    _shared("max_iter", "Batch: iterations (one pass each). Online ``fit``: passes of "
            "mini-batch steps."),
    _shared("n_init", "Starts, advanced together in shared passes; the best lower bound wins."),
    _shared("init_params", "How starts are drawn (:mod:`streamgmm.initialization`), unless "
            "``labels_init`` is given."),
    Setting("labels_init", "Any", None, OPTIONAL_ARRAY,
            "A component for every row of the data ``fit`` gets (NumPy or Dask, integers in "
            "``[0, n_components)``, shape (n_samples,)): the start is the update from this "
            "one-hot assignment, as scikit-learn's start from its k-means labels. Used by "
            "every start (give ``n_init=1``); not kept in model files.", cli=None),
    Setting("weight_concentration_prior_type", "str", "dirichlet_process",
            one_of(*WEIGHT_PRIOR_TYPES), "The prior on the weights: a Dirichlet process "
            "(stick-breaking) or a Dirichlet distribution.", cli="--weight-prior"),
    Setting("weight_concentration_prior", "float | None", None, OPTIONAL_REAL,
            "The prior's concentration (default ``1 / n_components``).",
            cli="--weight-concentration"),
    Setting("mean_precision_prior", "float | None", None, OPTIONAL_REAL,
            "Precision of the prior on the means (default 1)."),
    Setting("mean_prior", "Any", None, OPTIONAL_ARRAY,
            "Prior mean of the means, shape (n_features,) (default the data's mean).", cli=None),
    Setting("degrees_of_freedom_prior", "float | None", None, OPTIONAL_REAL,
            "Degrees of freedom of the Wishart prior (default ``n_features``)."),
    Setting("covariance_prior", "array-like | float | None", None, Rule(
        "an array-like, a real number or None",
        lambda value: value is None or not isinstance(value, str | bool)),
            "Prior covariance (default the data's covariance): (d, d) full and tied, (d,) "
            "diag, a float spherical.", cli=None),
    _shared("random_state"),
    _shared("warm_start"),
    _shared("verbose"),
    _shared("verbose_interval"),
    _shared("algorithm", "batch: variational EM, one pass over the data per iteration; online: "
            "stochastic variational inference over mini-batches (``max_iter`` counts passes)."),
    _shared("batch_size", "Rows per stochastic variational step (online)."),
    _shared("learning_decay", "``kappa`` of the step ``(t + learning_offset) ** -kappa`` of the "
            "t-th mini-batch (t = 1, 2, ...), in (0.5, 1]."),
    _shared("learning_offset", "``tau`` of the online step size."),
    Setting("total_samples", "float | None", None, Rule(
        "a positive real number or None",
        lambda v: v is None or (np.isscalar(v) and not isinstance(v, str | bool) and v > 0),
        kind="float", bounds=(0.0, np.inf, True, False)),
            "The data's size N that scales a mini-batch (online): ``fit`` uses the data's "
            "rows (or weight); ``partial_fit`` the rows seen so far when None.",
            modes=("online",)),
    _shared("shuffle", "Online: visit chunks, and rows inside each chunk, in a random order."),
    Setting("weight_threshold", "float", 0.01, real_in(0.0, 1.0),
            "Components with a smaller ``weights_`` are unused (``n_components_effective_``, "
            "``drop_unused``)."),
    Setting("drop_unused", "bool", False, BOOLEAN,
            "``predict`` and ``predict_proba`` consider only the used components (labels keep "
            "their component numbers; unused columns are 0)."),
    Setting("moves", "bool", False, BOOLEAN,
            "Batch: merge moves between passes (Hughes & Sudderth 2013): some passes also "
            "evaluate the most redundant pairs of components merged (the lighter emptied into "
            "the other, which is also a delete), and keep a merge only if the lower bound rises "
            "above the plain iteration's; a fit ends only after a round of proposals found no "
            "gain. Off by default (scikit-learn's iterations).", modes=("batch",)),
    _shared("init_sample_size"),
    _shared("sample_dim"),
    _shared("persist"),
)
"""Every hyper-parameter of :class:`BayesianGaussianMixture`, in signature order:
those it shares with :class:`~streamgmm.GaussianMixture` from that table
(:data:`streamgmm.hyperparameters.SETTINGS`), with this estimator's help where
the meaning differs, and the priors and options of its own. The estimator's
signature, docstring and checks and the options of ``streamgmm bayes`` are
made from it."""

HYPERPARAMETER_RULES = {setting.name: setting.rule for setting in SETTINGS}
"""What every constructor parameter must be, checked when fitting starts."""

PARTIAL_FIT_RULES = {setting.name: setting.rule for setting in SETTINGS if setting.partial_fit}
"""The parameters a ``partial_fit`` of a fitted model uses, checked on every call
(all of them, and the ``*_init`` arrays, are checked by the first)."""

IGNORED_BY_CHECKPOINTS = tuple(s.name for s in SETTINGS if not s.changes_result)
"""Settings that never change a fit's numbers: a checkpoint need not match them."""


def select_settings(settings: tuple[Setting, ...] = SETTINGS) -> tuple[Setting, ...]:
    """The settings :func:`streamgmm.select` takes."""
    return tuple(setting for setting in settings if setting.select)


def select_default(setting: Setting) -> Any:
    """A setting's default in :func:`streamgmm.select`."""
    return setting.default if setting.select_default == SAME else setting.select_default


def estimator_init(settings: tuple[Setting, ...] = SETTINGS) -> Callable[..., None]:
    """An ``__init__(self, first=..., *, rest=...)`` that stores every setting
    under its name, as scikit-learn requires, with the settings' defaults and
    annotations in its signature (written out as ``dataclasses`` does)."""
    names = [setting.name for setting in settings]
    arguments = [f"{name}=_defaults[{name!r}]" for name in names]
    if len(arguments) > 1:
        arguments.insert(1, "*")
    body = "".join(f"    self.{name} = {name}\n" for name in names) or "    pass\n"
    namespace = {"_defaults": {setting.name: setting.default for setting in settings}}
    exec(f"def __init__(self, {', '.join(arguments)}):\n{body}", namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__annotations__ = {
        **{setting.name: setting.annotation for setting in settings}, "return": "None"
    }
    init.__doc__ = "Store the hyper-parameters (checked when fitting starts)."
    return init


def doc_type(setting: Setting) -> str:
    """The numpydoc type of a setting, with its default."""
    rule = setting.rule
    if rule.kind == "choice":
        kind = "{" + ", ".join(_doc_value(option) for option in rule.options) + "}"
    elif rule.kind in ("int", "float") and setting.annotation != "Any":
        kind = f"{setting.annotation.replace(' | ', ' or ')} {_range_text(*rule.bounds)}".rstrip()
    elif rule.kind == "bool":
        kind = setting.annotation
    else:
        kind = "array-like or None" if setting.rule is OPTIONAL_ARRAY else (
            setting.annotation.replace(" | ", " or "))
    if setting.name == "random_state":
        kind = "int, Generator, RandomState or None"
    return f"{kind}, default={_doc_value(setting.default)}"


def _range_text(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """``>= 1``, ``> 0.5`` or ``in (0.5, 1.0]``; nothing for every real."""
    if low == -np.inf and high == np.inf:
        return ""
    if high == np.inf:
        return f"{'>' if low_open else '>='} {low}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def _doc_value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def parameters_doc(settings: tuple[Setting, ...] = SETTINGS, margin: str = "    ") -> str:
    """The numpydoc lines of ``settings`` (``name : type, default=...`` and the
    help), each line starting with ``margin``."""
    lines = []
    for setting in settings:
        lines.append(f"{margin}{setting.name} : {doc_type(setting)}")
        indent = margin + "    "
        lines.extend(
            textwrap.wrap(setting.help, 79, initial_indent=indent, subsequent_indent=indent)
        )
    return "\n".join(lines)


def fit_config_type(settings: tuple[Setting, ...] = SETTINGS) -> type:
    """A record type (a ``NamedTuple``: immutable, cheap to build) with one field
    per setting."""
    record = NamedTuple(  # noqa: UP014  (fields from the table)
        "FitConfig", [(setting.name, Any) for setting in settings]
    )
    record.__module__ = __name__
    record.__doc__ = (
        "The hyper-parameters one fit reads, frozen when it starts: one field per "
        "setting of the table, built by ``fit_config(estimator.get_params())``; what "
        ":mod:`streamgmm.fitting` and :mod:`streamgmm.selection` read instead of the "
        "estimator."
    )
    return record


FitConfig = fit_config_type()
"""The hyper-parameters one fit reads, frozen when it starts: what
:mod:`streamgmm.fitting` and :mod:`streamgmm.selection` read instead of the
estimator (``fit_config(estimator.get_params())``)."""


def fit_config(params: Mapping[str, Any]) -> Any:
    """A :data:`FitConfig` from ``get_params()`` (of a ``GaussianMixture``)."""
    return FitConfig(*[params[name] for name in SETTING_NAMES])


def make_rng(random_state: Any) -> np.random.Generator:
    """A NumPy Generator from None, an int, a Generator or a legacy RandomState;
    None draws its seed from NumPy's global random state (``np.random.seed``
    makes it reproducible), as scikit-learn's ``check_random_state(None)``."""
    if random_state is None:
        random_state = np.random.mtrand._rand
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31 - 1))
    return np.random.default_rng(random_state)


def user_parameters(model: Any, n_features: int):
    """``(weights, means, precision factors)`` from the ``*_init`` arrays of
    ``model`` in float64 (None where not given), checked for shape and values
    (``ValueError`` naming the array)."""
    from .covariance import precision_cholesky_from_precisions

    K, cov_type = model.n_components, model.covariance_type
    weights = means = prec_chol = None
    if model.weights_init is not None:
        weights = np.array(model.weights_init, dtype=np.float64)
        if weights.shape != (K,):
            raise ValueError(f"weights_init must have shape ({K},), got {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or np.any(weights > 1):
            raise ValueError("weights_init must hold finite values in [0, 1]")
        if not np.allclose(weights.sum(), 1.0):
            raise ValueError(f"weights_init must sum to 1, got {weights.sum()}")
    if model.means_init is not None:
        means = np.array(model.means_init, dtype=np.float64)
        if means.shape != (K, n_features):
            raise ValueError(
                f"means_init must have shape ({K}, {n_features}), got {means.shape}"
            )
        if not np.all(np.isfinite(means)):
            raise ValueError("means_init must be finite")
    if model.precisions_init is not None:
        precisions = np.array(model.precisions_init, dtype=np.float64)
        expected = parameter_shape(K, n_features, cov_type)
        if precisions.shape != expected:
            raise ValueError(
                f"precisions_init must have shape {expected} for covariance_type "
                f"{cov_type!r}, got {precisions.shape}"
            )
        if not np.all(np.isfinite(precisions)):
            raise ValueError("precisions_init must be finite")
        prec_chol = precision_cholesky_from_precisions(precisions, cov_type)
    return weights, means, prec_chol


__all__ = [
    "Setting",
    "FitConfig",
]
