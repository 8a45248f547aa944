"""The activation study's outputs: its tables, ``results.json``, and a self-contained HTML report.

The tables are built once as rows of strings and rendered both with rich (terminal, ``table.txt``)
and as HTML, so every output shows the same figures.
"""

from __future__ import annotations

import base64
import html
import io
import json
import shlex
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rich.console import Console

from nnscratch.diagnostics import SATURATED_SHARE
from nnscratch.io import atomic_write
from nnscratch.plotdata import LayerProfile
from nnscratch.study import PROBE, SEED_STACK, TARGET, VARIANTS, RunResult, StudySettings, VariantSummary
from nnscratch.tables import TableData, html_table, rich_table

DEFINITIONS = (
    ("test accuracy", "on every test image, mean ± standard deviation over the seeds"),
    ("train loss, val loss", "mean cross-entropy after the last epoch, on the training and validation images"),
    (
        f"epochs to {TARGET:.0%} val",
        f"for each seed, the first epoch whose validation accuracy reached {TARGET:.0%}, or never",
    ),
    (
        "s/epoch",
        "training seconds per epoch, diagnostics excluded; runs share the cores, so this is noisy on a busy machine",
    ),
    (
        "dead ReLU units",
        f"per ReLU layer, the share of units whose output is 0 for every one of the {PROBE:,} probe images "
        "(the first test images): they pass no gradient to their weights",
    ),
    (
        "saturated activations",
        "per Sigmoid/Tanh layer, the share of the layer's outputs on the probe images that lie where the "
        "derivative is below 1% of its peak: σ < 0.0025 or σ > 0.9975, |tanh| > 0.995",
    ),
    (
        "saturated units",
        f"per Sigmoid/Tanh layer, the share of units saturated on at least {SATURATED_SHARE:.0%} of the probe images",
    ),
    ("activation mean, std", "of each hidden layer's outputs on the probe images after the last epoch"),
    (
        "‖dW‖",
        "Frobenius norm of the loss gradient with respect to a layer's weights, on the probe images; in the "
        "per-layer table, of the layer with weights that feeds the hidden activation (a dense layer's own)",
    ),
)


def _percent(x: float | None) -> str:
    if x is None:
        return "·"
    value = 100 * x
    if value == 0 or value >= 10:
        return f"{value:.0f}%"
    return f"{value:.1f}%" if value >= 0.05 else "<0.1%"


def _per_layer(values: Sequence[float | None], fmt) -> str:
    if all(v is None for v in values):
        return "—"
    return " ".join("·" if v is None else fmt(v) for v in values)


def results_table(summary: Sequence[VariantSummary]) -> TableData:
    rows = []
    for s in summary:
        stats = s.statistics
        if stats is None:
            accuracy = f"diverged ({s.diverged} of {s.seeds})"
        else:
            accuracy = f"{100 * stats.test_accuracy_mean:.2f} ± {100 * stats.test_accuracy_std:.2f}%"
            if s.diverged:
                accuracy += f" ({s.diverged} diverged)"
        rows.append(
            (
                s.variant,
                f"{s.learning_rate:g}",
                accuracy,
                "—" if stats is None else f"{stats.train_loss:.4f}",
                "—" if stats is None else f"{stats.val_loss:.4f}",
                ", ".join("never" if e is None else str(e) for e in s.epochs_to_target),
                "—" if stats is None else f"{stats.seconds_per_epoch:.2f}",
            )
        )
    return TableData(
        "activation study: mean over seeds, each variant at its best learning rate",
        ("variant", "lr", "test accuracy", "train loss", "val loss", f"epochs to {TARGET:.0%} val", "s/epoch"),
        rows,
    )


def diagnostics_table(summary: Sequence[VariantSummary]) -> TableData:
    rows = []
    for s in summary:
        stats = s.statistics
        if stats is None:
            rows.append((s.variant, "—", "—", "—", "—", "—"))
            continue
        first, last = stats.grad_norm_first_epoch, stats.grad_norm_last_epoch
        rows.append(
            (
                s.variant,
                _per_layer(stats.dead, _percent),
                _per_layer(stats.saturated, _percent),
                _per_layer(stats.activation_mean, lambda v: f"{v:.2f}"),
                _per_layer(stats.activation_std, lambda v: f"{v:.2f}"),
                f"{first[0]:.3g} → {last[0]:.3g}",
            )
        )
    return TableData(
        "diagnostics: one value per hidden layer (· where it does not apply), after the last epoch",
        (
            "variant",
            "dead ReLU units",
            "saturated activations",
            "activation mean",
            "activation std",
            "‖dW₁‖ epoch 1 → last",
        ),
        rows,
    )


def sweep_table(summary: Sequence[VariantSummary]) -> TableData | None:
    """Mean final validation accuracy at every rate tried (None unless several rates were)."""
    rates = sorted({lr for s in summary for lr in s.learning_rates_tried}, key=float)
    if len(rates) < 2:
        return None
    rows = []
    for s in summary:
        tried = s.learning_rates_tried
        cells = []
        for lr in rates:
            mark = " *" if float(lr) == s.learning_rate else ""
            cells.append(f"{100 * tried[lr]:.2f}%{mark}" if lr in tried else "—")
        rows.append((s.variant, *cells))
    return TableData(
        "sweep: mean final val accuracy (* best)",
        ("variant", *(f"lr {lr}" for lr in rates)),
        rows,
    )


def layer_table(summary: Sequence[VariantSummary]) -> TableData:
    """Every diagnostic for every hidden layer of every variant."""
    rows = []
    for s in summary:
        stats = s.statistics
        if stats is None:
            continue
        for i, (layer, name, j) in enumerate(zip(s.hidden_layers, s.activations, s.fed_by, strict=True)):
            rows.append(
                (
                    s.variant,
                    str(layer),
                    name,
                    f"{stats.activation_mean[i]:.3f}",
                    f"{stats.activation_std[i]:.3f}",
                    _percent(stats.dead[i]),
                    _percent(stats.saturated[i]),
                    _percent(stats.saturated_units[i]),
                    "—" if j is None else f"{stats.grad_norm_first_epoch[j]:.3g}",
                    "—" if j is None else f"{stats.grad_norm_last_epoch[j]:.3g}",
                )
            )
    return TableData(
        "every hidden layer, after the last epoch (mean over seeds)",
        (
            "variant",
            "layer",
            "activation",
            "mean",
            "std",
            "dead units",
            "saturated activations",
            "saturated units",
            "‖dW‖ epoch 1",
            "‖dW‖ last epoch",
        ),
        rows,
    )


def command_line(settings: StudySettings, variants: Sequence[str]) -> str:
    """The ``nnscratch compare`` command that reproduces these settings (data and output aside)."""
    if settings.spec is not None:
        architecture = f"--spec {shlex.quote(settings.spec)}"
    else:
        architecture = f"--widths {','.join(map(str, settings.widths or ()))}"
    parts = [
        "nnscratch compare",
        architecture,
        f"--epochs {settings.epochs}",
        f"--optimizer {settings.optimizer}",
        f"--schedule {settings.schedule}",
        f"--batch-size {settings.batch_size}",
        f"--seeds {settings.seeds}",
    ]
    rates = ",".join(f"{lr:g}" for lr in settings.learning_rates)
    parts.append(f"--lrs {rates}" if len(settings.learning_rates) > 1 else f"--lr {rates}")
    if tuple(variants) != VARIANTS:
        parts.append(f"--variants {','.join(variants)}")
    return " ".join(parts)


def tables(summary: Sequence[VariantSummary]) -> list[TableData]:
    """The tables printed and written to ``table.txt``: results, the sweep if any, diagnostics."""
    sweep = sweep_table(summary)
    return [results_table(summary), *([sweep] if sweep else []), diagnostics_table(summary)]


def write_results(
    output: Path,
    settings: StudySettings,
    summary: Sequence[VariantSummary],
    runs: Sequence[RunResult],
    command: str,
) -> Path:
    """``results.json``: the settings, one entry per variant (``variants``) and every run without its
    bulky model and histogram data (``runs``)."""
    document = {
        "command": command,
        "settings": asdict(settings),
        "variants": [asdict(s) for s in summary],
        "runs": [r.to_dict(slim=True) for r in runs],
    }
    return atomic_write(output / "results.json", lambda f: f.write(json.dumps(document, indent=1).encode()))


def write_table_text(output: Path, summary: Sequence[VariantSummary]) -> Path:
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, highlight=False)
    for data in tables(summary):
        console.print(rich_table(data))
    return atomic_write(output / "table.txt", lambda f: f.write(buffer.getvalue().encode()))


def make_plots(
    directory: Path, summary: Sequence[VariantSummary], runs: Sequence[RunResult], X_test, y_test
) -> list[tuple[str, Path]]:
    """Every plot of the report, written into ``directory``; returns (title, path) pairs in report order.

    X_test (m, n) and y_test (m,) are the test images the runs were measured on.
    """
    from nnscratch import plots
    from nnscratch.metrics import confusion_matrix

    directory.mkdir(parents=True, exist_ok=True)
    best = {s.variant: s.learning_rate for s in summary}
    variants = [s.variant for s in summary]
    at_best = [r for r in runs if r.learning_rate == best[r.variant]]
    first = {r.variant: r for r in at_best if r.seed == 0}
    made = [
        (
            "Learning curves of every variant (seed 0)",
            plots.save_png(
                plots.learning_curves(
                    {v: first[v].history for v in variants}, title="Learning curves, every variant (seed 0)"
                ),
                directory / "learning_curves_overlay.png",
            ),
        )
    ]
    for v in variants:
        group = {f"seed {r.seed}": r.history for r in at_best if r.variant == v}
        made.append(
            (
                f"Learning curves: {v}, every seed",
                plots.save_png(
                    plots.learning_curves(group, title=f"Learning curves: {v}"), directory / f"learning_curves_{v}.png"
                ),
            )
        )
    names = sorted({a for s in summary for a in s.activations}, key=list(VARIANTS).index)
    made.append(
        (
            "Each activation and its derivative",
            plots.save_png(plots.activation_functions(names), directory / "activations.png"),
        )
    )
    made.append(
        (
            "Gradient norm per layer per epoch (seed 0)",
            plots.save_png(
                plots.gradient_norms({v: first[v].grad_norms for v in variants}, layer_names=summary[0].weight_layers),
                directory / "gradient_norms.png",
            ),
        )
    )
    profiles = {
        s.variant: LayerProfile(
            s.statistics.activation_mean,
            s.statistics.activation_std,
            s.statistics.grad_norm_last_epoch,
            hidden_names=tuple(f"layer {i}" for i in s.hidden_layers),
            weight_names=s.weight_layers,
        )
        for s in summary
        if s.statistics is not None
    }
    if profiles:
        made.append(
            (
                "Per-layer activation statistics and gradient norms after the last epoch (mean over seeds)",
                plots.save_png(
                    plots.layer_profiles(profiles, title="Per layer, after the last epoch (mean over seeds)"),
                    directory / "layer_profiles.png",
                ),
            )
        )
    for v in variants:
        histograms = first[v].histograms
        if histograms is not None:
            made.append(
                (
                    f"Activation histograms: {v} (seed 0, after training)",
                    plots.save_png(
                        plots.activation_histograms(histograms, title=f"Activation histograms: {v}"),
                        directory / f"histograms_{v}.png",
                    ),
                )
            )
    shown = next((v for v in ("seed", *variants) if v in first and first[v].model is not None), None)
    if shown is not None:
        run = first[shown]
        model = run.model
        assert model is not None
        k = int(max(model.predicted.max(), y_test.max())) + 1
        P = np.zeros((len(model.predicted), k))  # enough of P for the plots: the top class and its probability
        P[np.arange(len(model.predicted)), model.predicted] = model.confidence
        made += [
            (
                f"Confusion matrix: {shown} (seed 0)",
                plots.save_png(
                    plots.confusion(confusion_matrix(y_test, model.predicted, k), title=f"Confusion matrix: {shown}"),
                    directory / "confusion_matrix.png",
                ),
            ),
            (
                f"Most confidently wrong test digits: {shown} (seed 0)",
                plots.save_png(
                    plots.confident_mistakes(X_test, y_test, P, shape=run.input_shape),
                    directory / "confident_mistakes.png",
                ),
            ),
        ]
        if model.first_layer_weights is not None:
            made.append(
                (
                    f"First-layer weights: {shown} (seed 0)",
                    plots.save_png(
                        plots.first_layer_weights(model.first_layer_weights, shape=run.input_shape),
                        directory / "first_layer_weights.png",
                    ),
                )
            )
        if model.filters is not None:
            made.append(
                (
                    f"First-layer filters: {shown} (seed 0)",
                    plots.save_png(plots.conv_filters(model.filters), directory / "first_layer_filters.png"),
                )
            )
    return made


def _architecture(settings: StudySettings, summary: Sequence[VariantSummary]) -> str:
    """A sentence of HTML: the architecture every variant shares, and what the variants change in it."""
    stack = html.escape(", ".join(SEED_STACK))
    if settings.spec is None:
        n_in = "x".join(map(str, summary[0].input_shape))
        return (
            f"Architecture: {n_in} inputs, hidden widths {html.escape(', '.join(map(str, settings.widths or ())))}, "
            "softmax output; every hidden layer uses the variant's activation, and <code>seed</code> is the "
            f"original stack ({stack})."
        )
    layers = ", ".join(str(i) for i in summary[0].hidden_layers)
    return (
        f"Architecture: <code>{html.escape(settings.spec)}</code>; each of its hidden activations (layers "
        f"{layers}, counting from 1) uses the variant's activation, and <code>seed</code> cycles the original "
        f"stack ({stack}) over them in order."
    )


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1250px;margin:2rem auto;padding:0 1rem;color:#1e293b}"
    "table{border-collapse:collapse;font-size:13px;margin-bottom:1rem}"
    "th,td{border:1px solid #cbd5e1;padding:3px 8px;text-align:right}th{background:#f1f5f9}"
    "td:first-child,th:first-child{text-align:left}"
    "code{background:#f1f5f9;padding:2px 4px}dt{font-weight:600}dd{margin:0 0 .4rem 1.5rem}"
    "img{max-width:100%;border:1px solid #e2e8f0}h2{margin-top:2.5rem}"
)


def write_report(
    output: Path,
    settings: StudySettings,
    summary: Sequence[VariantSummary],
    plots_made: list[tuple[str, Path]],
    command: str,
) -> Path:
    """``report.html``: the command, the definitions, every table and every plot (embedded), one file."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>nnscratch activation study</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>nnscratch activation study</h1>",
        f"<p>Command: <code>{html.escape(command)}</code></p>",
        f"<p>{_architecture(settings, summary)}</p>",
        "<h2>Results</h2>",
        *(html_table(t) for t in tables(summary)),
        html_table(layer_table(summary)),
        "<h2>What the columns mean</h2><dl>",
        *(f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in DEFINITIONS),
        "</dl>",
    ]
    for title, path in plots_made:
        encoded = base64.b64encode(path.read_bytes()).decode()
        parts.append(
            f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>"
        )
    parts.append("</body></html>")
    return atomic_write(output / "report.html", lambda f: f.write("".join(parts).encode()))
