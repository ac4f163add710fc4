"""Options and helpers shared by the ``fastmf`` commands."""

from __future__ import annotations

import difflib
import functools

import click
import numpy as np

from fastmf.cli.progress import file_bars
from fastmf.common import jsonio
from fastmf.common.errors import FastMFError
from fastmf.common.threads import set_threads
from fastmf.data_prep.dataset import embedded_path, load_dataset
from fastmf.data_prep.loaders import ColumnSpec, read_item_features, reading_progress
from fastmf.data_prep.splits import train_test
from fastmf.models.hyper import RANDOM_STATE
from fastmf.registry import MODELS, model_class

# --------------------------------------------------------------------------- shared options


def data_options(f):
    """Column names and scale for generic CSV/Parquet rating files."""
    opts = [
        click.option("--user-col", default=None, help="User column of a generic CSV/Parquet file."),
        click.option("--item-col", default=None, help="Item column of a generic CSV/Parquet file."),
        click.option("--rating-col", default=None, help="Rating column of a generic CSV/Parquet file."),
        click.option("--time-col", default=None, help="Timestamp column of a generic file (optional)."),
        click.option("--sep", default=None, help="Field separator of a generic CSV (default ',' or tab for .tsv)."),
        click.option("--rating-range", default=None, metavar="LO,HI", help="Allowed rating scale (default 0.5,5)."),
        click.option(
            "--weight-col", default=None, help="Weight column of an implicit (user, item, weight) table (no ratings)."
        ),
        click.option(
            "--implicit",
            is_flag=True,
            default=False,
            help="DATA is an implicit (user, item[, weight]) table: no rating column, every row a positive "
            "(automatic when the file has no columns besides user, item, timestamp, weight).",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def column_spec(kw: dict) -> ColumnSpec:
    rng = kw.pop("rating_range", None)
    if rng is not None:
        try:
            lo, hi = (float(x) for x in rng.split(","))
        except ValueError:
            raise FastMFError(f"--rating-range expects LO,HI (for example 1,5), got '{rng}'") from None
        if not lo < hi:
            raise FastMFError(f"--rating-range LO,HI needs LO < HI, got '{rng}'")
        rng = (lo, hi)
    return ColumnSpec(
        user=kw.pop("user_col", None),
        item=kw.pop("item_col", None),
        rating=kw.pop("rating_col", None),
        timestamp=kw.pop("time_col", None),
        sep=kw.pop("sep", None),
        rating_range=rng,
        weight=kw.pop("weight_col", None),
        implicit=bool(kw.pop("implicit", False)),
    )


def check_threads(threads: int | None, flag: str = "--threads") -> None:
    """One line naming the flag for a negative thread count (0 or none: all cores)."""
    if threads is not None and threads < 0:
        raise FastMFError(f"{flag} must be a non-negative integer (0: all cores), got {threads}")


def threads_option(f):
    @click.option(
        "--threads", type=int, default=None, help="Threads for the parallel kernels (default or 0: all cores)."
    )
    @functools.wraps(f)
    def wrapper(*args, threads=None, **kw):
        check_threads(threads)
        set_threads(threads)
        return f(*args, **kw)

    return wrapper


def check_seed(ctx, param, value):
    """Click callback of a ``--seed`` flag: the range of the models' ``seed``, or one line naming the flag."""
    if value is not None:
        try:
            RANDOM_STATE.check(value)
        except FastMFError:
            raise FastMFError(f"{param.opts[0]} must be {RANDOM_STATE.describe()}, got {value}") from None
    return value


def output_options(f):
    """``--quiet``, ``--progress`` and ``--json``; the command's input files report their reading progress."""

    run = f

    @functools.wraps(run)
    def command(*args, **kw):
        with reading_progress(file_bars(kw.get("quiet", False), kw.get("forced_progress", False))):
            return run(*args, **kw)

    f = command
    f = click.option("--quiet", "-q", is_flag=True, help="No progress or notes on stderr.")(f)
    f = click.option(
        "--progress", "forced_progress", is_flag=True, help="Progress bars even when stderr is not a terminal."
    )(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")(f)
    return f


def emit_json(obj) -> None:
    """``obj`` as strict JSON on stdout: a metric that is not available (NaN, infinite) is null."""
    click.echo(jsonio.dumps(obj, indent=2))


def load_data(path, kw):
    return load_dataset(path, column_spec(kw))


# --------------------------------------------------------------------------- models

#: hyperparameters whose flag is not a model flag: ``--seed`` seeds the split and the model (``random_state``)
SHARED_FLAGS = ("random_state",)


def _declarations() -> dict:
    """``{name: [(kind, Param), ...]}`` over every model's declaration, in first-declared order."""
    out: dict = {}
    for kind, cls in MODELS.items():
        for name, p in cls.params.items():
            out.setdefault(name, []).append((kind, p))
    return out


def _model_option(name: str, decls: list):
    """The click option of hyperparameter ``name`` from its declarations (help lists each model's default)."""
    first = decls[0][1]
    by_default: dict = {}
    for kind, p in decls:
        by_default.setdefault(p.default, []).append(kind)
    defaults = "; ".join(f"{'/'.join(kinds)}: {'none' if d is None else d}" for d, kinds in by_default.items())
    help_text = f"{first.help} [{defaults}]"
    flag = "--" + name.replace("_", "-")
    if first.kind is bool:
        if first.default:
            return click.option("--no-" + name.replace("_", "-"), name, flag_value=False, default=None, help=help_text)
        return click.option(flag, name, flag_value=True, default=None, help=help_text)
    if first.choices:
        return click.option(
            flag, name, type=click.Choice(first.choices, case_sensitive=False), default=None, help=help_text
        )
    metavar = {int: "INTEGER", float: "NUMBER"}.get(first.kind, "TEXT")
    return click.option(flag, name, default=None, metavar=metavar, help=help_text)


def model_options(f):
    """Every model's hyperparameters as flags (shared by train, tune and bench); a flag that does not
    apply to the chosen model is refused with one line (:func:`fastmf.registry.build_model`)."""
    for name, decls in reversed(list(_declarations().items())):
        if name not in SHARED_FLAGS:
            f = _model_option(name, decls)(f)
    return f


def pop_model_params(kw: dict, kind: str) -> dict:
    """The model flags given on the command line, parsed with model ``kind``'s declaration of each (or
    the first declaration, for a flag that :func:`fastmf.registry.build_model` will refuse for ``kind``)."""
    cls = model_class(kind)
    out = {}
    for name, decls in _declarations().items():
        value = None if name in SHARED_FLAGS else kw.pop(name, None)
        if value is None:
            continue
        if isinstance(value, str):
            value = cls.params.get(name, decls[0][1]).parse(value, owner=f"--{name.replace('_', '-')}:")
        out[name] = value
    return out


def model_choice() -> click.Choice:
    return click.Choice(sorted(MODELS), case_sensitive=False)


def split_options(f):
    opts = [
        click.option(
            "--test-frac",
            type=float,
            default=None,
            help="Share of ratings held out for testing (default 0.1; 0 with --test).",
        ),
        click.option(
            "--split",
            type=click.Choice(["random", "user", "time"]),
            default="random",
            show_default=True,
            help="random: per rating; user: leave-k-out per user; time: latest ratings.",
        ),
        click.option("--leave-k", type=int, default=None, help="k of --split user (default 1)."),
        click.option(
            "--test",
            "test_path",
            type=click.Path(),
            default=None,
            help="Evaluate on this data set instead of a split of DATA.",
        ),
        click.option(
            "--seed",
            type=int,
            default=42,
            show_default=True,
            callback=check_seed,
            help="Seed of the split and the model.",
        ),
        click.option(
            "--item-features",
            type=click.Path(),
            default=None,
            help="CSV/Parquet of (item, feature) pairs replacing the genres as item features.",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def input_paths(data, kw) -> list[str]:
    """The input files and folders of a command (DATA, --test, --item-features; the bundled data when no
    DATA is given): an output may neither be nor contain one."""
    return [p for p in (data or embedded_path(), kw.get("test_path"), kw.get("item_features")) if p]


def prepare_split(data, kw, kinds=None):
    """Load DATA (and --test) and split; returns (train, test, split info). ``kinds`` are the models the
    command trains: a flag none of them uses is refused before any work."""
    if kw.get("leave_k") is not None and kw["split"] != "user":
        raise FastMFError("--leave-k applies to --split user only")
    if kw.get("item_features") and kinds is not None and not any(model_class(k).uses_item_features for k in kinds):
        raise FastMFError(f"--item-features applies to --model features only, not {', '.join(kinds)}")
    columns = column_spec(kw)
    full = load_dataset(data, columns)
    features_path = kw.pop("item_features", None)
    if features_path:
        full = full.with_features(*read_item_features(features_path))
    test_path = kw.pop("test_path")
    given = load_dataset(test_path, columns) if test_path else None
    check_implicit(full, given)
    split, frac, leave_k = kw.pop("split"), kw.pop("test_frac"), kw.pop("leave_k")
    train, test = train_test(full, given, split, frac, kw["seed"], 1 if leave_k is None else leave_k)
    info = {
        "data": full.source,
        "test_data": given.source if given is not None else None,
        "ratings": full.n_ratings,
        "users": full.n_users,
        "items": full.n_items,
        "split": {
            "kind": "given" if given is not None else split,
            "seed": kw["seed"],
            "test_frac": (0.0 if given is not None else 0.1) if frac is None else frac,
            **({"leave_k": 1 if leave_k is None else leave_k} if split == "user" else {}),
        },
    }
    return train, test, info


def check_implicit(*datasets) -> None:
    """Refuse rating models on an implicit (user, item[, weight]) table; note on stderr that rankers take
    every row as a positive. The models are those of the running command (``--model`` or ``--models``)."""
    implicit = [d for d in datasets if d is not None and d.implicit]
    if not implicit:
        return
    ctx = click.get_current_context(silent=True)
    params = ctx.params if ctx is not None else {}
    kinds = [params["kind"]] if params.get("kind") else [k.strip() for k in (params.get("models") or "").split(",")]
    rating = [k for k in kinds if k and model_class(k).rating_model]
    source = implicit[0].source
    if rating:
        raise FastMFError(
            f"{source} is an implicit (user, item[, weight]) table without ratings: the rating "
            f"model '{rating[0]}' needs ratings (use bpr or popular, or name the rating column "
            "with --rating-col)"
        )
    given = params.get("threshold") if params.get("kind") else None
    click.echo(
        f"fastmf: note: {source} is an implicit (user, item[, weight]) table: every row is a positive"
        + (f" (--threshold {given} does not apply)" if given is not None else ""),
        err=True,
    )


def resolve_item(model, item: str):
    """An item id from an id string or a unique title match."""
    ids = model.item_map_.ids
    if model.item_map_.is_int and item.strip().lstrip("-").isdigit():
        if model.item_map_.index_of(np.asarray([int(item)]))[0] >= 0:
            return int(item)
    elif not model.item_map_.is_int and model.item_map_.index_of(np.asarray([item]))[0] >= 0:
        return item
    if model.item_titles_ is None:
        raise FastMFError(f"unknown item '{item}'")
    titles = np.char.lower(model.item_titles_.astype(str))
    exact = np.flatnonzero(titles == item.lower())
    hits = exact if exact.size else np.flatnonzero(np.char.find(titles, item.lower()) >= 0)
    if hits.size == 0:
        close = difflib.get_close_matches(item.lower(), titles.tolist(), n=3, cutoff=0.5)
        hint = (
            "; did you mean "
            + " or ".join(f"'{model.item_titles_[np.flatnonzero(titles == c)[0]]}'" for c in close)
            + "?"
            if close
            else ""
        )
        raise FastMFError(f"no item id or title matches '{item}'{hint}")
    if hits.size > 1:
        shown = "; ".join(f"{model.item_titles_[h]} (id {ids[h]})" for h in hits[:5])
        raise FastMFError(
            f"'{item}' matches {hits.size} titles: {shown}{'; ...' if hits.size > 5 else ''}; "
            "give more of the title or the id"
        )
    return ids[hits[0]].item()
