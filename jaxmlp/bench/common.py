"""Shared helpers of the ``jaxmlp-bench`` subcommands: errors, CSV and plot output, timing, data.

JSON results are written with :func:`jaxmlp.utils.write_json` (strict JSON,
atomic); CSV and PNG files go through :func:`jaxmlp.utils.atomic_write` too.
"""

from __future__ import annotations

import csv
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..utils import atomic_write


class CLIError(Exception):
    """A user error: printed as ``jaxmlp-bench: error: ...`` with exit code 2."""


def write_csv(path, rows: Sequence[dict]) -> pathlib.Path:
    """Write a list of flat dicts as CSV (union of keys as columns), atomically.

    Missing values are left empty; the parent folder is created.
    """
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)

    def write(fh):
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in keys})

    return atomic_write(path, write, make_parents=True)


def plot_xy(path, series: dict[str, tuple[Sequence, Sequence]], xlabel: str, ylabel: str, title: str = "", logy=False, logx=False):
    """Line plot of several ``name -> (x, y)`` series saved to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, (x, y) in series.items():
        ax.plot(x, y, "o-", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=120), binary=True, make_parents=True)
    finally:
        plt.close(fig)


def plot_errorbars(path, x: Sequence, y: Sequence, yerr: Sequence, converged: Sequence[bool], xlabel: str, ylabel: str,
                   title: str = "", vline: tuple[float, str] | None = None):
    """Mean ± standard deviation per setting saved to ``path`` (PNG).

    Converged settings are filled markers; unconverged ones are hollow and
    annotated "not converged".  ``vline = (x, label)`` draws a dashed
    vertical line (e.g. the cutoff a reference's locality implies).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not len(x) == len(y) == len(yerr) == len(converged):
        raise ValueError(f"x, y, yerr and converged differ in length: {len(x)}, {len(y)}, {len(yerr)}, {len(converged)}")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(x, y, "-", color="C0", alpha=0.5)
    for xi, yi, ei, ok in zip(x, y, yerr, converged):
        ax.errorbar([xi], [yi], yerr=[ei], fmt="o", color="C0", mfc="C0" if ok else "white", capsize=3)
        if not ok:
            ax.annotate("not converged", (xi, yi), textcoords="offset points", xytext=(4, 6), fontsize=7, color="C3")
    if vline is not None:
        ax.axvline(vline[0], ls="--", color="C2", label=vline[1])
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=120), binary=True, make_parents=True)
    finally:
        plt.close(fig)


def time_call(fn: Callable[[], Any], repeat: int = 3, min_time: float = 0.0) -> float:
    """Best wall time (s) of ``fn()`` after one warm-up call (compilation).

    ``fn`` must block until its result is ready (use ``jax.block_until_ready``).
    """
    fn()
    best = float("inf")
    t_total = 0.0
    k = 0
    while k < repeat or t_total < min_time:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        t_total += dt
        k += 1
        if k > 1000:
            break
    return best


def load_structures(path: str | None, default: str, n: int, seed: int):
    """Structures from ``path`` (any format jaxmlp or ASE reads) or a built-in dataset."""
    from jaxmlp.data import Dataset

    if path is None:
        from jaxmlp.data.generate import default_dataset

        return default_dataset(default, n=n, seed=seed)
    p = pathlib.Path(path)
    if not p.exists():
        raise CLIError(f"data file not found: {path}")
    try:
        return Dataset.from_file(p)
    except ValueError as exc:
        raise CLIError(f"cannot read {path}: {exc}") from exc
