"""The ``fastmf bench`` command."""

from __future__ import annotations

import click

from fastmf.cli import main
from fastmf.cli.format import format_bench_table, format_roofline
from fastmf.cli.options import check_threads, emit_json, model_choice, output_options
from fastmf.cli.progress import Progress
from fastmf.common.errors import FastMFError
from fastmf.common.files import check_target
from fastmf.common.threads import max_threads
from fastmf.drivers import bench as B
from fastmf.drivers.tune import parse_grid
from fastmf.models.backend import BACKENDS
from fastmf.registry import model_class


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FastMFError(f"{what} expects comma-separated integers, got '{text}'") from None


@main.command()
@click.option("--model", "kind", type=model_choice(), default="als", show_default=True)
@click.option("--scale", type=float, default=1.0, show_default=True, help="Shrink the synthetic ml-32m shape.")
@click.option("--data", type=click.Path(), default=None, help="Benchmark on this prepared folder instead.")
@click.option("--factors", default="20,64", show_default=True, help="Comma-separated latent dimensions.")
@click.option("--threads", "threads_list", default=None, help="Comma-separated thread counts (default 1,all).")
@click.option("--backends", default="numba,numpy", show_default=True)
@click.option("--epochs", type=int, default=4, show_default=True, help="Epochs per numba run (first = compile).")
@click.option("--numpy-epochs", type=int, default=1, show_default=True, help="Epochs per numpy run.")
@click.option(
    "--series/--no-series",
    default=True,
    show_default=True,
    help="Also run numba at 1/8, 1/4, 1/2 and 1 of --scale to show cost linear in ratings (not with --data).",
)
@click.option("--balance-check", is_flag=True, help="Also run numba with naive equal-count work splitting.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Extra model hyperparameter.")
@click.option("--cache", type=click.Path(), default=None, help="Folder for generated synthetic sets.")
@click.option(
    "--out",
    "out_path",
    type=click.Path(),
    default=None,
    help="Also write the records (a JSON list) to this file (replacing only a file of records).",
)
@click.option(
    "--roofline",
    is_flag=True,
    help="Also measure this machine's peak flop rate and memory bandwidth and report each run's share of the peak.",
)
@output_options
def bench(
    kind,
    scale,
    data,
    factors,
    threads_list,
    backends,
    epochs,
    numpy_epochs,
    series,
    balance_check,
    params,
    cache,
    out_path,
    roofline,
    as_json,
    quiet,
    forced_progress,
):
    """Seconds per epoch, throughput, compile time and peak RSS for numba vs numpy in one run."""
    kind = model_class(kind).kind
    if out_path:
        check_target(out_path, B.is_records, "benchmark record file")
    log = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    all_threads = max_threads()
    threads = _int_list(threads_list, "--threads") if threads_list else sorted({1, all_threads})
    for n in threads:
        check_threads(n)
    dims = _int_list(factors, "--factors")
    if "factors" in model_class(kind).params:  # the declared range, before any data is generated
        for d in dims:
            model_class(kind).params["factors"].check(d, owner="--factors:")
    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    for b in chosen:
        if b not in BACKENDS:
            raise FastMFError(f"unknown backend '{b}' in --backends (choose from {', '.join(BACKENDS)})")
    extra = parse_grid(kind, " ".join(params), where="--param")[0] if params else {}
    folder = data or B.synthetic_folder(scale, cache=cache, log=log)
    series_data = None
    if series and not data:  # the scaling series is one of synthetic sets
        series_data = {s * scale: B.synthetic_folder(s * scale, cache=cache, log=log) for s in B.SERIES}
    scale = None if data else scale  # a given data set has no synthetic scale
    configs = B.plan(
        kind, scale, dims, threads, chosen, epochs, numpy_epochs, series, folder, series_data, extra, balance_check
    )
    configs = B.companions(kind, configs, scale, dims, threads, chosen, epochs, numpy_epochs, folder, extra)
    records, failures = [], []
    with Progress(len(configs), f"bench {kind}", "run", quiet, forced_progress) as progress:
        for cfg in configs:
            try:
                records.append(B.run_subprocess(cfg))
            except FastMFError as exc:  # keep the other measurements
                failures.append(str(exc))
                progress.note(f"warning: {exc}")
            progress.step(**({"epoch_s": records[-1]["epoch_seconds"]} if records else {}))
    B.add_ratios(records)
    peak = B.machine_peak() if roofline else None
    if peak is not None:
        B.add_roofline(records, peak)
    ratios = B.als_ratios(records)
    if out_path:
        B.write_records(out_path, records)
    if as_json:
        emit_json({"records": records, "failures": failures, **({"machine": peak} if peak else {})})
    else:
        click.echo(format_bench_table(records))
        if peak is not None:
            click.echo(format_roofline(records, peak))
        for line in ratios:
            click.echo(line)
        if out_path:
            click.echo(f"wrote {out_path}")
    if failures:
        raise FastMFError(f"{len(failures)} of {len(configs)} configurations failed; first: {failures[0]}")
