"""The chart of one run: each metric's median against N, a line per store (warm solid,
cold dashed), both axes logarithmic."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from .results import METRIC, METRICS, Results
from .stores import STORES

_COLUMNS = 4
_COLORS = {
    "lmdb": "tab:blue",
    "lmdb-unshared": "tab:cyan",
    "memory": "tab:orange",
    "sqlite": "tab:green",
    "redis": "tab:red",
}


def draw(results: Results, path: Path) -> None:
    """Draw the chart of ``results`` into the PNG file ``path``."""
    measured = {_panel_of(measurement.metric) for measurement in results.measurements}
    panels = [panel for panel in dict.fromkeys(map(_panel_of, METRIC)) if panel in measured]
    rows = max(1, math.ceil(len(panels) / _COLUMNS))
    figure, axes = plt.subplots(
        rows, _COLUMNS, figsize=(4.2 * _COLUMNS, 3.3 * rows), squeeze=False
    )
    for axis, panel in zip(axes.flat, panels, strict=False):
        _draw_panel(axis, results, panel)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    legend = [
        Line2D([], [], color=_COLORS[name], marker="o", label=STORES[name].label)
        for name in results.stores
    ]
    legend += [
        Line2D([], [], color="gray", linestyle="-", label="warm"),
        Line2D([], [], color="gray", linestyle="--", label="cold"),
    ]
    machine = results.machine
    figure.suptitle(
        f"Median cost per unit against N: {machine['cpu']}, {machine['logical_cores']} "
        f"cores, Python {machine['python']}, {machine['date'][:10]}",
        y=0.995,
    )
    figure.legend(
        handles=legend,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.975),
        ncol=len(legend),
        frameon=False,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.945))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _size_label(size: int) -> str:
    for unit, suffix in ((10**6, "M"), (10**3, "k")):
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def _panel_of(key: str) -> str:
    """The panel of a metric: its key without ``.warm`` or ``.cold``."""
    return key.removesuffix(".warm").removesuffix(".cold")


def _draw_panel(axis: Axes, results: Results, panel: str) -> None:
    metrics = [metric for metric in METRICS if _panel_of(metric.key) == panel]
    for metric in metrics:
        for name in results.stores:
            points = sorted(
                (measurement.size, measurement.median / metric.scale)
                for measurement in results.measurements
                if measurement.store == name and measurement.metric == metric.key
            )
            if points:
                sizes, values = zip(*points, strict=True)
                axis.plot(
                    sizes,
                    values,
                    marker="o",
                    markersize=3,
                    linestyle="--" if metric.key.endswith(".cold") else "-",
                    color=_COLORS[name],
                )
    first = metrics[0]
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xticks(results.sizes, [_size_label(size) for size in results.sizes])
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_title(first.title.removesuffix(", warm"), fontsize=9)
    axis.set_xlabel("N (jobs)", fontsize=8)
    axis.set_ylabel(f"{first.shown_in} per {first.per}", fontsize=8)
    axis.tick_params(labelsize=7)
    axis.grid(True, which="both", alpha=0.3)
