"""The Airloop page: a pipeline's health as plain HTML with inline SVG charts.

No JavaScript framework, no external stylesheet or font: the page works in a browser that
reaches nothing but Airflow. It is shown inside the Airflow UI's sandboxed iframe, where a
link may neither open a tab nor move the top page; a few lines of script (the iframe is
same-origin) open external links with the top window's `open` and move the Airflow UI's own
router to its pages, and do nothing when the page is opened on its own.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from airloop.health.summary import AirflowRun, PipelineHealth, VersionSummary, WindowPoint
from airloop.tasks import UNIT_INTERVAL, greater_is_better

#: Colours that read on white and in print; one per series, the same on every chart.
LABELLED, ESTIMATED, FLOOR, DRIFT, THRESHOLD = "#1f6fb2", "#7b4fb8", "#b23b1f", "#d08a1a", "#6b6b6b"


@dataclass(frozen=True)
class Links:
    """Where the page's links point: the Airflow UI's root and this app's root (both paths)."""

    airflow: str = ""
    app: str = "/airloop"

    def run(self, run: AirflowRun) -> str:
        return f"{self.airflow}/dags/{quote(run.dag_id, safe='')}/runs/{quote(run.run_id, safe='')}"

    def dag(self, dag_id: str) -> str:
        return f"{self.airflow}/dags/{quote(dag_id, safe='')}"

    def window_report(self, pipeline: str, window_id: str, kind: str) -> str:
        return f"{self.app}/pipelines/{quote(pipeline, safe='')}/windows/{quote(window_id, safe='')}/{kind}"

    def quarantine_report(self, pipeline: str, snapshot_id: str) -> str:
        return f"{self.app}/pipelines/{quote(pipeline, safe='')}/quarantine/{quote(snapshot_id, safe='')}"


def render_page(
    healths: Sequence[PipelineHealth], *, links: Links, title: str = "Airloop", context: str | None = None
) -> str:
    """The whole page: each pipeline's health, one after another."""
    body = "".join(_pipeline(h, links) for h in healths) or "<p>No pipeline is configured.</p>"
    lead = f'<p class="context">{escape(context)}</p>' if context else ""
    return _document(title, f"{lead}{body}")


def render_message(title: str, message: str, *, link: tuple[str, str] | None = None) -> str:
    """A page that only says something (not an Airloop DAG, please log in)."""
    extra = f'<p><a href="{escape(link[1])}" target="_top">{escape(link[0])}</a></p>' if link else ""
    return _document(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>{extra}")


def _pipeline(health: PipelineHealth, links: Links) -> str:
    dags = " · ".join(
        f'<a href="{escape(links.dag(dag_id))}" data-host-route>{escape(dag_id)}</a>' for dag_id in health.dags.values()
    )
    mlflow = _external(health.mlflow_model_url, "registered model in MLflow")
    error = f'<p class="error">{escape(health.registry_error)}</p>' if health.registry_error else ""
    return (
        f'<section class="pipeline" data-pipeline="{escape(health.pipeline)}">'
        f"<h1>{escape(health.pipeline)} <small>{escape(health.model_name)}</small></h1>"
        f'<p class="meta">DAGs: {dags}{" · " + mlflow if mlflow else ""} · as of {_when(health.generated_at)}</p>'
        f"{error}"
        f'<div class="cards">{_version_card("Champion", health.champion, links, health)}'
        f"{_version_card('Challenger', health.challenger, links, health)}{_serving_card(health, links)}</div>"
        f"<h2>Monitoring</h2>{_charts(health)}{_windows_table(health, links)}"
        f"<h2>Retraining</h2>{_pending(health)}{_ledger(health, links)}"
        f"<h2>Quarantined batches</h2>{_quarantine(health, links)}"
        f"<h2>Recent Airflow runs</h2>{_runs(health.recent_runs, links)}"
        f"<h2>Registered versions</h2>{_versions(health, links)}"
        "</section>"
    )


def _version_card(role: str, version: VersionSummary | None, links: Links, health: PipelineHealth) -> str:
    testid = role.lower()
    if version is None:
        return f'<div class="card" data-testid="{testid}"><h3>{role}</h3><p class="muted">none yet</p></div>'
    same = role == "Challenger" and health.champion is not None and health.champion.version == version.version
    rows = [
        (version.metric, _num(version.score)),
        ("decision", escape(version.decision or "undecided")),
        ("why", escape(version.decision_reason or "")),
        ("trained on", escape(version.snapshot_id or "?") + _short(version.snapshot_hash, "data hash")),
        ("code", escape((version.git_commit or "?")[:12])),
        ("image", escape(version.image or "—")),
        ("reason", escape(version.trigger_reason or "")),
        ("registered", _when(version.created_at)),
        ("served windows", _served_windows(version)),
        ("retrained into", ", ".join(f"v{escape(v)}" for v in version.retrained_into) or "—"),
    ]
    if version.compared_with:
        rows.insert(1, (f"champion v{version.compared_with} then", _num(version.champion_score)))
    found = [
        _external(version.mlflow_version_url, "MLflow version"),
        _external(version.mlflow_run_url, "MLflow run"),
        _run_link(version.training_run, links, "Airflow run"),
    ]
    return (
        f'<div class="card" data-testid="{testid}"><h3>{role} '
        f'<span class="version" data-version="{escape(version.version)}">v{escape(version.version)}</span>'
        f"{' <small>(the champion)</small>' if same else ''}</h3>{_rows(rows)}"
        f'<p class="links">{" · ".join(f for f in found if f)}</p></div>'
    )


def _readmit_dag(health: PipelineHealth, links: Links) -> str:
    dag_id = health.dags.get("readmit")
    if not dag_id:
        return ""
    return f'trigger <a href="{escape(links.dag(dag_id))}" target="_top">{escape(dag_id)}</a> with this batch, or '


def _short(digest: str | None, what: str) -> str:
    return f' <small title="{escape(digest)}">({what} {escape(digest[:12])})</small>' if digest else ""


def _served_windows(version: VersionSummary) -> str:
    if not version.windows:
        return "—"
    span = version.windows[0] if len(version.windows) == 1 else f"{version.windows[0]} to {version.windows[-1]}"
    return f"{len(version.windows)} of those below ({escape(span)})"


def _serving_card(health: PipelineHealth, links: Links) -> str:
    serving = health.serving
    if serving is None:
        note = "the champion has no deployment recorded" if health.champion else "nothing deployed yet"
        return f'<div class="card" data-testid="serving"><h3>Serving</h3><p class="muted">{note}</p></div>'
    if serving.answering is None:
        live = '<span class="bad">not answering</span>'
    elif serving.answering_version == serving.version:
        live = f'<span class="good">{escape(serving.answering)}</span>'
    else:
        live = (
            f'<span class="bad">{escape(serving.answering)}, not the champion v{escape(serving.version)}: '
            "the reconcile DAG repairs this</span>"
        )
    rows = [
        ("target", escape(serving.target)),
        ("endpoint", escape(serving.endpoint or "")),
        ("answers now", live),
        ("image", escape(serving.image or "—")),
        ("instance", escape(serving.instance or "—")),
        ("since", _when(serving.since)),
    ]
    deployed = _run_link(serving.deployed_by, links, "deployed by this Airflow run")
    return (
        f'<div class="card" data-testid="serving"><h3>Serving <span class="version">v{escape(serving.version)}</span>'
        f'</h3>{_rows(rows)}<p class="links">{deployed}</p></div>'
    )


def _charts(health: PipelineHealth) -> str:
    windows = health.windows
    if not windows:
        return '<p class="muted">No window monitored yet (airloop_monitoring writes one a day).</p>'
    labels = [w.start.strftime("%m-%d") for w in windows]
    drift = _chart(
        "drift",
        "Share of features drifted",
        labels,
        [_Series("drift share", [w.drift_share for w in windows], DRIFT, bars=True)],
        lines=[
            (
                health.drift_threshold,
                f"{health.drift_threshold:.0%}: "
                + ("raises" if health.drift_raises else "would raise (drift.raises off)"),
            )
        ],
        ids=[w.id for w in windows],
        fixed=(0.0, 1.0),
        percent=True,
    )
    estimated = any(w.estimated is not None for w in windows)  # a binary model's calibrated estimate
    direction = _bound(health)
    performance = _chart(
        "performance",
        f"{_metric_name(health.monitoring_metric)}: labelled{' and estimated' if estimated else ''}, "
        f"against the {direction}",
        labels,
        [
            _Series("labelled", [w.performance for w in windows], LABELLED),
            _Series("estimated", [w.estimated for w in windows], ESTIMATED, dashed=True),
            _Series(
                f"{direction}: the served version's validation score",
                [w.validation_score for w in windows],
                FLOOR,
                step=True,
            ),
        ],
        ids=[w.id for w in windows],
        unit_interval=health.monitoring_metric in UNIT_INTERVAL,
    )
    return f'<div class="charts">{drift}{performance}</div>'


def _bound(health: PipelineHealth) -> str:
    """What the served version's validation score is to its windows' scores: a floor, or a ceiling for an error."""
    return "floor" if greater_is_better(health.monitoring_metric) else "ceiling"


def _metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


#: How the page names the tasks' metrics (`airloop.tasks.METRICS`).
METRIC_NAMES = {
    "roc_auc": "ROC AUC",
    "roc_auc_ovr": "ROC AUC (one-vs-rest)",
    "average_precision": "average precision",
    "log_loss": "log loss",
    "f1_macro": "macro F1",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
}


@dataclass(frozen=True)
class _Series:
    name: str
    values: list[float | None]
    color: str
    dashed: bool = False
    bars: bool = False
    step: bool = False


def _chart(
    name: str,
    title: str,
    labels: list[str],
    series: list[_Series],
    *,
    ids: list[str],
    lines: Sequence[tuple[float, str]] = (),
    fixed: tuple[float, float] | None = None,
    percent: bool = False,
    unit_interval: bool = True,
) -> str:
    """An SVG chart of one value per window; each point carries `data-window` and `data-value`.

    `unit_interval`: every value is a share or a score, so the y range stays within [0, 1].
    """
    width, height, left, right, top, bottom = 560, 220, 44, 12, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values if v is not None] + [y for y, _ in lines]
    low, high = fixed or _range(values, unit_interval=unit_interval)
    count = max(len(labels), 1)
    slot = plot_w / count

    def x(i: int) -> float:
        return left + slot * (i + 0.5)

    def y(value: float) -> float:
        return top + plot_h * (1 - (value - low) / (high - low))

    fmt: Callable[[float], str] = (lambda v: f"{v:.0%}") if percent else (lambda v: f"{v:.3f}")
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" data-chart="{name}" '
        f'class="chart">'
    ]
    for tick in _ticks(low, high):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" class="grid"/>'
            f'<text x="{left - 4}" y="{y(tick) + 3:.1f}" class="axis" text-anchor="end">{fmt(tick)}</text>'
        )
    every = max(1, round(count / 8))
    for i, label in enumerate(labels):
        if i % every == 0 or i == count - 1:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - bottom + 14}" class="axis" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    for value, label in lines:
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'stroke="{THRESHOLD}" stroke-dasharray="6 4" class="threshold"/>'
            f'<text x="{width - right}" y="{y(value) - 4:.1f}" class="axis" text-anchor="end">{escape(label)}</text>'
        )
    plot = _Plot(x=x, y=y, slot=slot, base=top + plot_h, ids=ids, fmt=fmt)
    parts.extend(_series_svg(s, plot) for s in series)
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{s.color}"></i>{escape(s.name)}</span>' for s in series)
    caption = f"<figcaption>{escape(title)}</figcaption>"
    return f'<figure>{caption}{"".join(parts)}<div class="legend">{legend}</div></figure>'


@dataclass(frozen=True)
class _Plot:
    """Where a window's value goes on a chart."""

    x: Callable[[int], float]
    y: Callable[[float], float]
    slot: float
    base: float
    ids: list[str]
    fmt: Callable[[float], str]


def _series_svg(s: _Series, plot: _Plot) -> str:
    """Bars, a line through points, or (a floor) a step line with a level across each window's slot."""
    x, y, slot, base, ids, fmt = plot.x, plot.y, plot.slot, plot.base, plot.ids, plot.fmt
    parts = [f'<g data-series="{escape(s.name)}">']
    if s.bars:
        width = min(slot * 0.7, 36.0)
        for i, value in enumerate(s.values):
            if value is None:
                continue
            top = y(value)
            parts.append(
                f'<rect x="{x(i) - width / 2:.1f}" y="{top:.1f}" width="{width:.1f}" '
                f'height="{max(base - top, 0.5):.1f}" fill="{s.color}" data-window="{escape(ids[i])}" '
                f'data-value="{value:.6f}"><title>{escape(ids[i])}: {fmt(value)}</title></rect>'
            )
        return "".join(parts) + "</g>"
    segments: list[list[str]] = [[]]
    for i, value in enumerate(s.values):
        if value is None:
            segments.append([])
        elif s.step:
            half = min(slot * 0.45, 40.0)
            segments[-1] += [f"{x(i) - half:.1f},{y(value):.1f}", f"{x(i) + half:.1f},{y(value):.1f}"]
        else:
            segments[-1].append(f"{x(i):.1f},{y(value):.1f}")
    dash = ' stroke-dasharray="5 3"' if s.dashed else (' stroke-dasharray="3 2"' if s.step else "")
    for points in segments:
        if len(points) > 1:
            parts.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{s.color}" stroke-width="2"{dash}/>'
            )
    radius = 2.0 if s.step else 3.5
    for i, value in enumerate(s.values):
        if value is not None:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="{radius}" fill="{s.color}" '
                f'data-window="{escape(ids[i])}" data-value="{value:.6f}">'
                f"<title>{escape(s.name)} {escape(ids[i])}: {fmt(value)}</title></circle>"
            )
    return "".join(parts) + "</g>"


def _range(values: list[float], *, unit_interval: bool = True) -> tuple[float, float]:
    """A y range around the values, padded; within [0, 1] for shares and scores (`unit_interval`)."""
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if not unit_interval:  # an error in the label's unit (RMSE in minutes), a log loss, an R²
        pad = max((high - low) * 0.15, abs(high) * 0.05, 0.02)
        return low - pad, high + pad
    pad = max((high - low) * 0.15, 0.02)
    return max(0.0, low - pad), min(1.0, high + pad)


def _ticks(low: float, high: float) -> list[float]:
    """At most 7 ticks, 1, 2, 2.5 or 5 times a power of ten apart."""
    magnitude = 10 ** math.floor(math.log10(max(high - low, 1e-9) / 6))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if (high - low) / (m * magnitude) <= 6)
    first = -(-low // step) * step
    ticks = []
    value = first
    while value <= high + 1e-9:
        ticks.append(round(value, 6))
        value += step
    return ticks


def _windows_table(health: PipelineHealth, links: Links) -> str:
    rows = []
    for w in reversed(health.windows[-10:]):
        rows.append(
            [
                f"{_when(w.start, date=True)} → {_when(w.end, date=True)}",
                f"v{escape(w.model_version)}" if w.model_version else "—",
                str(w.served_rows),
                str(w.labels_used),
                _pct(w.drift_share),
                _num(w.performance),
                _num(w.estimated),
                _num(w.validation_score),
                escape("; ".join(w.degradations) or w.note or "healthy"),
                " · ".join(f for f in _window_links(health, w, links) if f),
            ]
        )
    head = [
        "window",
        "served by",
        "rows",
        "labels",
        "drift",
        "labelled",
        "estimated",
        _bound(health),
        "found",
        "reports",
    ]
    return _table(head, rows, empty="No window monitored yet.", testid="windows")


def _window_links(health: PipelineHealth, w: WindowPoint, links: Links) -> list[str]:
    found = [
        f'<a href="{escape(links.window_report(health.pipeline, w.id, kind))}" target="_blank" rel="noopener">'
        f"{kind} report</a>"
        for kind in w.reports
    ]
    return [*found, _external(w.evidently_url, "Evidently UI"), _external(w.mlflow_run_url, "MLflow run")]


def _pending(health: PipelineHealth) -> str:
    if not health.pending_signals:
        return ""
    items = "".join(
        f"<li>{_when(s.raised_at)}: {escape(s.summary)} <small>({escape(s.kind)})</small></li>"
        for s in health.pending_signals
    )
    return f'<p>Waiting for the retraining sensor:</p><ul class="pending">{items}</ul>'


def _ledger(health: PipelineHealth, links: Links) -> str:
    rows = [
        [
            _when(e.at),
            f'<span class="action {escape(e.action)}">{escape(e.outcome or e.action)}</span>',
            f"v{escape(e.model_version)}",
            escape(e.key or e.kind),
            escape(e.reason),
            _run_link(e.training_run, links, e.training_run.run_id if e.training_run else ""),
            f"v{escape(e.produced_version)}" if e.produced_version else "",
        ]
        for e in health.retraining
    ]
    return _table(
        ["at", "decision", "champion", "signal", "reason", "training run", "produced"],
        rows,
        empty="No retraining signal handled yet.",
        testid="ledger",
    )


def _quarantine(health: PipelineHealth, links: Links) -> str:
    rows = [
        [
            escape(b.snapshot_id),
            str(b.rows) if b.rows is not None else "?",
            f"{len(b.failed)} of {b.evaluated}" if b.evaluated is not None else str(len(b.failed)),
            escape(", ".join(b.failed)),
            f'<a href="{escape(links.quarantine_report(health.pipeline, b.snapshot_id))}" target="_blank" '
            f'rel="noopener">validation report</a>'
            if b.has_report
            else "",
            _run_link(b.blocked_run, links, "blocked run") if b.blocked_run else "",
            _readmit_dag(health, links)
            + f"<code>{escape(b.readmit_command)}</code>"
            + (f" ({b.attempts} failed attempt{'s' if b.attempts != 1 else ''})" if b.attempts else ""),
        ]
        for b in health.quarantined
    ]
    return _table(
        ["batch", "rows", "failed", "expectations", "report", "blocked", "once the source is fixed"],
        rows,
        empty="No batch quarantined.",
        testid="quarantine",
    )


def _runs(runs: Sequence[AirflowRun], links: Links) -> str:
    ordered = sorted(runs, key=lambda r: r.start_date or r.logical_date or dt.datetime.min.replace(tzinfo=dt.UTC))
    rows = [
        [
            escape(r.dag_id),
            _run_link(r, links, r.run_id),
            f'<span class="state {escape(r.state or "")}">{escape(r.state or "?")}</span>',
            _when(r.start_date),
            _when(r.end_date),
        ]
        for r in reversed(ordered[-15:])
    ]
    return _table(["DAG", "run", "state", "started", "ended"], rows, empty="No run yet.", testid="runs")


def _versions(health: PipelineHealth, links: Links) -> str:
    rows = [
        [
            f"v{escape(v.version)}",
            escape(", ".join(v.aliases)),
            _num(v.score),
            escape(v.decision or ""),
            escape(v.snapshot_id or ""),
            _when(v.created_at),
            " · ".join(f for f in (_external(v.mlflow_version_url, "MLflow"), _run_link(v.training_run, links)) if f),
        ]
        for v in health.versions
    ]
    return _table(
        ["version", "aliases", health.metric, "decision", "trained on", "registered", "links"],
        rows,
        empty="No version registered yet.",
        testid="versions",
    )


def _table(head: list[str], rows: list[list[str]], *, empty: str, testid: str) -> str:
    if not rows:
        return f'<p class="muted" data-testid="{testid}">{escape(empty)}</p>'
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table data-testid="{testid}"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def _rows(rows: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{v or '—'}</dd>" for k, v in rows) + "</dl>"


def _run_link(run: AirflowRun | None, links: Links, text: str = "Airflow run") -> str:
    if run is None:
        return ""
    state = f" ({escape(run.state)})" if run.state and text != run.run_id else ""
    return f'<a href="{escape(links.run(run))}" data-host-route title="{escape(run.run_id)}">{escape(text)}</a>{state}'


def _external(url: str | None, text: str) -> str:
    return f'<a href="{escape(url)}" target="_blank" rel="noopener">{escape(text)}</a>' if url else ""


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _when(moment: dt.datetime | None, *, date: bool = False) -> str:
    if moment is None:
        return "—"
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%d") if date else utc.strftime("%Y-%m-%d %H:%M UTC")


_STYLE = """
:root { color-scheme: light dark; --fg: #1d2125; --muted: #62686e; --line: #d9dde1; --card: #f6f8fa; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8ea; --muted: #9aa1a8; --line: #3a4047; --card: #1f2428; } }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); margin: 16px 20px; }
h1 { font-size: 20px; margin: 0 0 4px; } h1 small { font-weight: normal; color: var(--muted); font-size: 14px; }
h2 { font-size: 16px; margin: 24px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 8px; }
a { color: #1f6fb2; } .meta, .muted, .context, small { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 12px; margin-top: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 12px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 0; }
dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
.version { background: #1f6fb2; color: #fff; border-radius: 10px; padding: 0 8px; font-size: 13px; }
.good { color: #1a7f37; } .bad, .error { color: #b23b1f; } .error { font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 12px; }
figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 4px; }
.chart { width: 100%; height: auto; max-width: 720px; }
.chart .grid { stroke: var(--line); stroke-width: 1; } .chart .axis { font-size: 10px; fill: var(--muted); }
.legend { font-size: 12px; color: var(--muted); } .key { margin-right: 12px; }
.key i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
table { border-collapse: collapse; width: 100%; margin-top: 8px; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
.action.retrain, .action.promoted, .state.success { color: #1a7f37; }
.action.alert, .action.rejected, .action.failed, .state.failed { color: #b23b1f; }
.pipeline + .pipeline { margin-top: 40px; }
"""

# Inside the Airflow UI's iframe (sandboxed: no popups, no top navigation, but same-origin),
# open external links through the top window and move the Airflow UI's router to its own pages.
_SCRIPT = """
(function () {
  if (window.top === window.self) return;
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[href]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    try {
      if (link.hasAttribute("data-host-route")) {
        var history = window.top.history, state = history.state || {};
        history.pushState({ usr: null, key: Math.random().toString(36).slice(2, 10), idx: (state.idx || 0) + 1 },
                          "", link.getAttribute("href"));
        window.top.dispatchEvent(new PopStateEvent("popstate", { state: history.state }));
        event.preventDefault();
      } else if (link.target === "_blank") {
        window.top.open(link.href, "_blank", "noopener");
        event.preventDefault();
      }
    } catch (error) {
      // The top window is another origin: the link does what the sandbox lets it do.
    }
  });
})();
"""


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}<script>{_SCRIPT}</script></body></html>"
    )
