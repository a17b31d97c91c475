"""Figures of a head's quality: learning curve, confusion matrix, predicted against true.

Plain Plotly figures, shared by the Fine-tune page and ``training.evaluate``'s HTML report.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from explorer.core.heads import Task, headline

HEIGHT = 380


def learning_curve_figure(curves: dict[str, list[dict]], task: Task) -> go.Figure:
    """Headline metric against training labels, one line per method, with standard-error bars."""
    metric, label = headline(task)
    scale, unit = (100.0, " (%)") if metric == "error" else (1.0, "")
    fig = go.Figure()
    for i, (method, rows) in enumerate(curves.items()):
        rows = [r for r in rows if r.get(metric) is not None]
        fig.add_trace(go.Scatter(
            x=[r["labels"] for r in rows], y=[r[metric] * scale for r in rows], name=method, mode="lines+markers",
            marker_color=qualitative.T10[i % len(qualitative.T10)],
            error_y=dict(type="data", array=[(r.get(f"{metric}_se") or 0.0) * scale for r in rows], visible=True),
            hovertemplate=f"{method}<br>%{{x}} labels: %{{y:.3g}}{unit}<extra></extra>"))
    fig.update_layout(height=HEIGHT, margin=dict(l=8, r=8, t=40, b=8), title=f"Learning curve — {task.target}",
                      xaxis_title="training labels", yaxis_title=label.replace("test error", f"test error{unit}"),
                      legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    return fig


def confusion_figure(metrics: dict) -> go.Figure:
    """The held-out confusion matrix: rows true class, columns predicted, cells counts."""
    classes, counts = metrics["classes"], np.asarray(metrics["confusion"])
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig = go.Figure(go.Heatmap(z=share, x=classes, y=classes, text=counts, texttemplate="%{text}", colorscale="Blues",
                               zmin=0, zmax=1, colorbar=dict(title="row share"),
                               hovertemplate="true %{y}<br>predicted %{x}<br>%{text} sources<extra></extra>"))
    fig.update_layout(height=HEIGHT, margin=dict(l=8, r=8, t=40, b=8), title="Confusion matrix (held-out labels)",
                      xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    return fig


def predicted_vs_true_figure(truth: np.ndarray, predicted: np.ndarray, task: Task) -> go.Figure:
    """Held-out predictions against labels, with the one-to-one line."""
    truth, predicted = np.asarray(truth, float), np.asarray(predicted, float)
    unit = f" [{task.target_unit}]" if task.target_unit else ""
    low = float(np.nanmin(np.r_[truth, predicted])) if len(truth) else 0.0
    high = float(np.nanmax(np.r_[truth, predicted])) if len(truth) else 1.0
    fig = go.Figure([
        go.Scatter(x=[low, high], y=[low, high], mode="lines", name="one-to-one", line=dict(color="#888", dash="dash")),
        go.Scatter(x=truth, y=predicted, mode="markers", name="held-out sources", marker=dict(size=6, opacity=0.7),
                   hovertemplate="true %{x:.4g}<br>predicted %{y:.4g}<extra></extra>"),
    ])
    fig.update_layout(height=HEIGHT, margin=dict(l=8, r=8, t=40, b=8), title="Predicted against true (held-out labels)",
                      xaxis_title=f"true {task.target}{unit}", yaxis_title=f"predicted {task.target}{unit}",
                      legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    return fig
