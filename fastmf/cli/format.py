"""Text output of the commands: tables and reports of the drivers' plain-data results."""

from __future__ import annotations

from fastmf.metrics.ranking import METRIC_NAMES, SAMPLED_AUC_USERS
from fastmf.metrics.rating import STRATA


def format_ranking(report: dict) -> list[str]:
    """Text lines for the ranking metrics in ``report`` (empty if there are none)."""
    if "auc" not in report:
        return []
    ks = sorted({int(k.split("@")[1]) for k in report if k.startswith("ndcg@")})
    lines = [
        f"ranking over {report['ranking_users']:,} test users ({report['test_positives']:,} test positives; "
        f"{report['ranking_unknown_positives']:,} on items without a training positive not ranked)",
        f"{'auc':<12}{report['auc']:.4f}  (exact, per user, all eligible known items)",
        f"{'sampled_auc':<12}{report['sampled_auc']:.4f}  (ML-32M report protocol: "
        f"{SAMPLED_AUC_USERS:,} users x 1 positive + 1 negative, pooled)",
        f"{'K':>4}" + "".join(f"{n + '@K':>14}" for n in METRIC_NAMES),
    ]
    for k in ks:
        lines.append(f"{k:>4}" + "".join(f"{report[f'{n}@{k}']:>14.4f}" for n in METRIC_NAMES))
    return lines


def format_strata(rows: dict) -> str:
    """A table of RMSE per stratum for one or more models: ``{model name: rmse_by_stratum}``."""
    names = list(rows)
    lines = ["item's training ratings " + "".join(f"{n:>16}" for n in names) + f"{'count':>10}"]
    first = rows[names[0]]
    for label, _, _ in STRATA:
        cells = "".join(f"{rows[n][label]['rmse']:>16.4f}" for n in names)
        lines.append(f"{label:<24}{cells}{first[label]['count']:>10,}")
    return "\n".join(lines)


COMPARISON_COLUMNS = ("auc", "sampled_auc", "ndcg@10", "precision@10", "recall@10", "map@10", "ndcg@20", "recall@20")


def format_comparison(rows: list[dict]) -> str:
    """A table with one line per model of :func:`compare` (every metric is in its rows)."""
    lines = [f"{'model':<10}" + "".join(f"{c:>13}" for c in COMPARISON_COLUMNS) + f"{'fit s':>9}"]
    for row in rows:
        lines.append(
            f"{row['model']:<10}"
            + "".join(f"{row[c]:>13.4f}" for c in COMPARISON_COLUMNS)
            + f"{row['fit_seconds']:>9.2f}"
        )
    return "\n".join(lines)


def format_uncertainty(table: dict) -> str:
    """The items with the smallest and largest posterior variance, as text."""
    lines = [f"{'':<20}{'variance':>10}{'ratings':>9}  title"]
    for label, key in (("most certain", "most_certain"), ("least certain", "least_certain")):
        for j, row in enumerate(table[key]):
            lines.append(f"{label if j == 0 else '':<20}{row['variance']:>10.5f}{row['ratings']:>9,}  {row['title']}")
    means = "  ".join(f"{k}: {v['mean_variance']:.4f}" for k, v in table["by_count"].items() if v["items"])
    lines.append(f"mean variance by training ratings  {means}")
    return "\n".join(lines)


def format_bench_table(records: list[dict]) -> str:
    """One line per benchmark record of :func:`fastmf.drivers.bench.run_config`."""
    rate_key = next((k for k in ("samples_per_s", "positives_per_s") if any(k in r for r in records)), "ratings_per_s")
    head = (
        f"{'model':<9}{'backend':<8}{'D':>4}{'thr':>4}{'ratings':>12}{'epoch s':>10}"
        f"{'M ' + rate_key.split('_')[0] + '/s':>14}{'compile s':>11}{'peak MB':>9}{'x numpy':>9}  note"
    )
    lines = [head]
    for r in records:
        note = _bench_note(r)
        ratio = f"{r['speedup_vs_numpy']:.1f}" if "speedup_vs_numpy" in r else ""
        lines.append(
            f"{r['model']:<9}{r['backend']:<8}{r['factors'] or 0:>4}{r['threads']:>4}{r['ratings']:>12,}"
            f"{r['epoch_seconds']:>10.3f}{r.get(rate_key, 0) / 1e6:>14.2f}{r['compile_seconds']:>11.2f}"
            f"{r['peak_rss_mb']:>9.0f}{ratio:>9}  {note}"
        )
    return "\n".join(lines)


def _bench_note(record: dict) -> str:
    """What sets a benchmark record apart: ``series`` and its parameters other than ``factors``."""
    extra = {k: v for k, v in record.get("params", {}).items() if k != "factors"}
    return " ".join(["series" if record.get("series") else ""] + [f"{k}={v}" for k, v in extra.items()]).strip()


def format_roofline(records: list[dict], peak: dict) -> str:
    """The machine's measured peak and bandwidth, and each run's counted arithmetic and traffic against them."""
    lines = [
        f"machine: {peak['peak_gflops']:.1f} GFLOP/s float32 (BLAS GEMM, {peak['cores']} cores), "
        f"{peak['bandwidth_gbs']:.1f} GB/s (array copy, {peak['cores']} cores)",
        f"{'model':<9}{'backend':<8}{'D':>4}{'thr':>4}{'GFLOP/epoch':>13}{'GFLOP/s':>10}{'of peak':>9}"
        f"{'GB/epoch':>10}{'GB/s':>8}{'of bandwidth':>14}  note",
    ]
    for r in records:
        lines.append(
            f"{r['model']:<9}{r['backend']:<8}{r['factors'] or 0:>4}{r['threads']:>4}"
            f"{r['flops_per_epoch'] / 1e9:>13.1f}{r['gflops']:>10.2f}{r['peak_fraction']:>9.1%}"
            f"{r.get('traffic_per_epoch', 0.0) / 1e9:>10.1f}{r.get('traffic_gbs', 0.0):>8.1f}"
            f"{r.get('bandwidth_fraction', 0.0):>14.1%}  {_bench_note(r)}"
        )
    return "\n".join(lines)


def _cell(row: dict | None, width: int, fmt: str) -> str:
    if row is None:
        return " " * width
    text = f"{row['value']:{fmt}} {row['ratings']:>7,}  {row['title']}"
    return (text[: width - 1] + "~") if len(text) > width else text.ljust(width)


def format_polarizing(result: dict, width: int = 46) -> str:
    """The three polarizing lists side by side (value, ratings, title)."""
    cols = [
        ("largest factor norm", result["largest_norm"], "7.3f"),
        ("smallest factor norm", result["smallest_norm"], "7.3f"),
        ("largest rating variance", result["largest_variance"], "7.3f"),
    ]
    lines = [
        f"items with at least {result['min_ratings']:,} ratings "
        "(norm: training ratings of the model; variance: ratings in DATA)",
        "    " + "".join(f"{name:<{width}}" for name, _, _ in cols).rstrip(),
    ]
    for r in range(max(len(rows) for _, rows, _ in cols)):
        cells = "".join(_cell(rows[r] if r < len(rows) else None, width, fmt) for _, rows, fmt in cols)
        lines.append(f"{r + 1:>3} {cells.rstrip()}")
    return "\n".join(lines)


def format_similar(query: str, rows: list[dict]) -> str:
    lines = [f"items closest to {query} (cosine of item factors)"]
    lines += [
        f"{r + 1:>3}. {row['similarity']:7.4f} {row['ratings']:>7,}  {row['title']}" for r, row in enumerate(rows)
    ]
    return "\n".join(lines)


def format_describe(stats: dict) -> str:
    """Human-readable rendering of :func:`describe`."""
    lines = [
        f"source              {stats['source']}",
        f"ratings             {stats['ratings']:,}",
        f"users               {stats['users']:,}",
        f"items               {stats['items']:,}",
        f"density             {stats['density']:.4%}",
        f"mean rating         {stats['mean_rating']:.4f}",
    ]
    for who in ("user", "item"):
        s = stats[f"ratings_per_{who}"]
        lines.append(f"ratings per {who:<7} min {s['min']:,}  median {s['median']:g}  max {s['max']:,}")
    lines += [
        f"items with <= 3     {stats['items_with_at_most_3_ratings']:,}",
        f"log-log slope       users {stats['user_activity_loglog_slope']:.2f}   "
        f"items {stats['item_popularity_loglog_slope']:.2f}",
        f"item features       {stats['features']}",
        "rating histogram",
    ]
    total = max(1, stats["ratings"])
    peak = max(stats["rating_histogram"].values(), default=1)
    for value, count in stats["rating_histogram"].items():
        bar = "#" * max(1, int(40 * count / peak))
        lines.append(f"  {value:>4}  {count:>12,}  {count / total:6.1%}  {bar}")
    return "\n".join(lines)


def format_abtest(report: dict) -> str:
    """The text report printed by ``fastmf abtest``."""
    meta = report["meta"]
    names = [v["name"] for v in meta["variants"]]
    truth = (
        "planted expected ratings and simulated feedback"
        if meta["mode"] == "planted"
        else f"held-out test ratings (positives >= {meta['threshold']:g})"
    )
    weights = "/".join(f"{100 * w:g}" for w in meta["weights"])
    lines = [
        f"experiment {report['experiment']}  run {report['run']}",
        f"salt '{meta['salt']}', traffic {weights}, top-{meta['k']} recommendations, truth: {truth}",
    ]
    for v in meta["variants"]:
        setting = f", items with >= {v['min_item_ratings']} ratings" if v["min_item_ratings"] else ""
        lines.append(
            f"  {v['name']}: {v['label'] or v['model']} ({v['model']}{setting})  {report['counts'][v['name']]:,} users"
        )
    lines.append(f"sample ratio check: chi-square p = {report['sample_ratio_p']:.3g}")
    head = f"{'metric':<16}" + "".join(f"{v + ' mean [CI]':>30}" for v in names)
    head += "".join(f"{v + ' - ' + names[0] + ' [bootstrap CI]':>34}{'t':>8}{'p':>10}" for v in names[1:])
    lines.append(head)
    for m, r in report["metrics"].items():
        row = f"{m:<16}"
        for v in names:
            a = r["arms"][v]
            row += f"{a['mean']:.4f} [{a['ci'][0]:.4f}, {a['ci'][1]:.4f}]".rjust(30)
        for v in names[1:]:
            c = r["versus_control"][v]
            row += f"{c['diff']:+.4f} [{c['diff_ci'][0]:+.4f}, {c['diff_ci'][1]:+.4f}]".rjust(34)
            row += f"{c['t']:>8.2f}{c['p']:>10.2g}"
        lines.append(row)
    fb = report["feedback"]
    cells = []
    for v in names:
        like, dislike = fb["likes"][v], fb["dislikes"][v]
        share = like / (like + dislike) if like + dislike else float("nan")
        cells.append(f"{v} {like:,.0f}/{dislike:,.0f} ({share:.1%} liked)")
    test = fb["test"]
    chi = (
        (
            f"chi-square {test['chi2']:.2f} (dof {test['dof']}), p = {test['p']:.2g} (items as independent "
            "trials: optimistic; see like_rate)"
        )
        if test
        else "chi-square: n/a"
    )
    lines.append("likes/dislikes: " + "   ".join(cells) + f"; {chi}")
    size = report["sample_size"]
    if size and size["per_arm"]:
        lines.append(
            f"sample size: {size['per_arm']:,} users per arm detect a difference of {size['effect']:.4f} "
            f"in {size['metric']} (sd {size['sd']:.4f}) with {size['power']:.0%} power at "
            f"alpha {size['alpha']:g}"
        )
    lines.append("verdict: " + report["verdict"])
    return "\n".join(lines)
