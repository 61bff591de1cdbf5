"""Reference labelling: run an ASE calculator over structures, crash-safe, serial or parallel.

:func:`label` writes each labelled frame to an extended XYZ file as soon as
it is computed (flushed and fsynced), so an interrupted run loses at most the
frames in progress and ``resume=True`` continues where it stopped.  With
``executor=`` (any :class:`concurrent.futures.Executor`: a local process
pool, ``dask.distributed``'s ``client.get_executor()``, a Parsl executor) or
``workers=n`` (a local spawn-started process pool) the frames are computed
in parallel; they are still written in input order, each as soon as all
frames before it are done, so the file is always a resumable prefix.
"""

from __future__ import annotations

import contextlib
import copy
import io as _io
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

from .io.extxyz import extxyz_frame_text

__all__ = ["LabellingError", "label", "openmp_threads", "xtb_calculator"]


class LabellingError(RuntimeError):
    """A calculator failed on a structure; ``frame`` is its index."""

    def __init__(self, message: str, frame: int) -> None:
        super().__init__(message)
        self.frame = frame

    def __reduce__(self):  # survives the trip back from a worker process
        return (type(self), (str(self), self.frame))


def xtb_calculator(method: str = "GFN2-xTB", **kwargs: Any) -> Calculator:
    """A quiet tblite (xTB) ASE calculator.

    Parameters
    ----------
    method : str, optional
        ``"GFN2-xTB"`` (default), ``"GFN1-xTB"`` or ``"IPEA1-xTB"``.
    **kwargs
        Passed to ``tblite.ase.TBLite`` (``charge``, ``multiplicity``,
        ``accuracy``, ``electronic_temperature``, ``max_iterations``, ...).
        ``verbosity`` defaults to 0 (no output).

    Returns
    -------
    tblite.ase.TBLite
        Energies in eV, forces in eV/Å, stress in eV/Å³ (periodic only).

    Raises
    ------
    ImportError
        If tblite is not installed; the message says how to install it.
    """
    try:
        from tblite.ase import TBLite
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "xtb_calculator needs the tblite Python package: `pip install tblite` "
            "(or `pip install 'jaxmlp[xtb]'`, or `conda install -c conda-forge tblite-python`)"
        ) from exc
    kwargs.setdefault("verbosity", 0)
    return TBLite(method=method, **kwargs)


def _openmp_runtimes() -> list[Any]:
    """ctypes handles of the OpenMP runtimes loaded in this process (Linux only)."""
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = {line.split()[-1] for line in fh if "/lib" in line}
    except OSError:
        return []
    libs = []
    for path in sorted(paths):
        name = os.path.basename(path)
        if name.startswith(("libgomp", "libomp", "libiomp")):
            try:
                lib = ctypes.CDLL(path)
                lib.omp_get_max_threads.restype = ctypes.c_int
                libs.append(lib)
            except (OSError, AttributeError):
                continue
    return libs


@contextlib.contextmanager
def openmp_threads(n: int | None) -> Iterator[None]:
    """Temporarily limit the OpenMP threads of loaded runtimes (libgomp, libomp).

    Parameters
    ----------
    n : int or None
        Thread count inside the block; ``None`` changes nothing.

    Notes
    -----
    Small xTB calculations (tens of atoms) run fastest on one thread, and
    on a busy machine OpenMP threads that wait for each other can make them
    ten times slower. Only runtimes already loaded are affected (import the
    calculator's library first); elsewhere than Linux this does nothing.
    """
    libs = _openmp_runtimes() if n is not None else []
    previous = [lib.omp_get_max_threads() for lib in libs]
    for lib in libs:
        lib.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        for lib, value in zip(libs, previous):
            lib.omp_set_num_threads(value)


def _complete_prefix(text: str) -> tuple[int, int, bool]:
    """Scan extxyz text written frame by frame.

    Returns ``(n_frames, n_chars, partial)``: the number of complete frames,
    the length of the text they occupy, and whether an incomplete frame (a
    run interrupted while writing) follows them.

    Raises
    ------
    ValueError
        If the text is not a sequence of xyz frames (a frame header is not
        an atom count); nothing is truncated then.
    """
    lines = text.splitlines(keepends=True)
    i = 0
    chars = 0
    frames = 0
    while i < len(lines):
        header = lines[i].strip()
        if not header:
            if all(not line.strip() for line in lines[i:]):
                return frames, chars, False
            raise ValueError(f"line {i + 1}: blank line inside the file")
        try:
            n_atoms = int(header)
        except ValueError:
            raise ValueError(f"line {i + 1}: expected an atom count, got {header[:60]!r}") from None
        end = i + n_atoms + 2
        if end > len(lines) or not lines[end - 1].endswith("\n"):
            return frames, chars, True
        chars += sum(len(line) for line in lines[i:end])
        frames += 1
        i = end
    return frames, chars, False


def _same_structure(a: Atoms, b: Atoms, atol: float = 1e-6) -> bool:
    return (
        len(a) == len(b)
        and np.array_equal(a.numbers, b.numbers)
        and np.allclose(a.positions, b.positions, rtol=0.0, atol=atol)
        and np.array_equal(np.asarray(a.pbc, bool), np.asarray(b.pbc, bool))
        and np.allclose(np.asarray(a.cell), np.asarray(b.cell), rtol=0.0, atol=atol)
    )


def _wanted(properties: Sequence[str], atoms: Atoms) -> list[str]:
    wanted = ["energy"] + [p for p in properties if p != "energy"]
    if not np.asarray(atoms.pbc, bool).all():
        wanted = [p for p in wanted if p != "stress"]
    return wanted


def _load_existing(path: Path, frames: list[Atoms], properties: Sequence[str]) -> tuple[list[Atoms], int | None]:
    """Frames already in ``path`` (checked against ``frames``) and, when a partial
    frame follows them, the length to truncate the file to."""
    import ase.io

    text = path.read_text(encoding="utf-8")
    try:
        n_done, n_chars, partial = _complete_prefix(text)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot resume, the file is not an extxyz file written by label(): {exc}") from exc
    done: list[Atoms] = []
    if n_done:
        try:
            done = ase.io.read(_io.StringIO(text[:n_chars]), index=":", format="extxyz")
        except Exception as exc:
            raise ValueError(f"{path}: cannot resume, the existing frames do not parse: {exc}") from exc
    if len(done) > len(frames):
        raise ValueError(
            f"{path} holds {len(done)} frames but only {len(frames)} structures were given: the file "
            "belongs to other structures (delete it or pass resume=False)"
        )
    for k, old in enumerate(done):
        if not _same_structure(old, frames[k]):
            raise ValueError(
                f"{path}: frame {k} ({old.get_chemical_formula()}) does not match input structure {k} "
                f"({frames[k].get_chemical_formula()}): the file belongs to other structures "
                "(delete it or pass resume=False)"
            )
        results = old.calc.results if old.calc is not None else {}
        missing = [p for p in _wanted(properties, old) if p not in results]
        if missing:
            raise ValueError(
                f"{path}: frame {k} has no {missing} although they were requested; it was labelled "
                "with other properties (delete the file or pass resume=False)"
            )
    return done, (n_chars if partial else None)


def _compute(atoms: Atoms, calculator: Calculator, properties: Sequence[str], k: int) -> dict[str, Any]:
    work = atoms.copy()
    work.calc = calculator
    results: dict[str, Any] = {}
    try:
        for prop in _wanted(properties, work):
            value = calculator.get_property(prop, work)
            results[prop] = np.array(value, dtype=float) if np.ndim(value) else float(value)
    except Exception as exc:
        raise LabellingError(
            f"calculator {type(calculator).__name__} failed on frame {k} ({atoms.get_chemical_formula()}): "
            f"{type(exc).__name__}: {exc}",
            frame=k,
        ) from exc
    for prop, value in results.items():
        if not np.all(np.isfinite(value)):
            raise LabellingError(f"calculator returned non-finite {prop!r} for frame {k}", frame=k)
    return results


def _compute_task(atoms: Atoms, calculator: Calculator, properties: Sequence[str], k: int,
                  threads: int | None) -> tuple[int, dict[str, Any]]:
    """One frame in a worker: ``(k, results)``; module level so that executors can pickle it."""
    with openmp_threads(threads):
        return k, _compute(atoms, calculator, properties, k)


def _worker_init(threads: int | None) -> None:
    """Process-pool initializer: OpenMP threads of libraries loaded later in the worker."""
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(int(threads))


def _local_pool(workers: int, threads: int | None):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent usually holds JAX/XLA and OpenMP threads, which fork does not survive
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(threads,))


def _parallel_results(executor, frames, calculator, properties, remaining, threads, max_pending):
    """Yield ``(k, results)`` in increasing ``k`` while the executor computes ahead.

    At most ``max_pending`` frames are submitted at a time; on an error the
    frames not yet started are cancelled and the error is raised once every
    frame before the failed one has been yielded (written).
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    todo = list(remaining)
    pending: dict[Any, int] = {}
    ready: dict[int, dict[str, Any]] = {}
    failed: dict[int, BaseException] = {}
    nxt = 0  # position in todo of the next frame to yield
    sub = 0  # position in todo of the next frame to submit
    try:
        while nxt < len(todo):
            while sub < len(todo) and len(pending) < max_pending and not failed:
                k = todo[sub]
                # a copy per frame: thread pools would otherwise share one calculator's state between threads
                calc_k = copy.deepcopy(calculator)
                pending[executor.submit(_compute_task, frames[k], calc_k, properties, k, threads)] = k
                sub += 1
            while todo[nxt] in ready:
                yield todo[nxt], ready.pop(todo[nxt])
                nxt += 1
                if nxt == len(todo):
                    return
            if todo[nxt] in failed:
                raise failed[todo[nxt]]
            if not pending:  # an earlier failure stopped submission and nothing before it is left
                raise failed[min(failed)]
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                k = pending.pop(fut)
                exc = fut.exception()
                if exc is not None:
                    failed[k] = exc if isinstance(exc, LabellingError) else LabellingError(
                        f"frame {k} failed in the executor: {type(exc).__name__}: {exc}", frame=k)
                else:
                    ready[k] = fut.result()[1]
    finally:
        for fut in pending:
            fut.cancel()


def label(
    structures: Iterable[Atoms],
    calculator: Calculator,
    path: str | os.PathLike,
    properties: Sequence[str] = ("energy", "forces"),
    resume: bool = True,
    progress: bool = True,
    threads: int | None = None,
    executor: Any = None,
    workers: int | None = None,
    max_pending: int | None = None,
) -> list[Atoms]:
    """Label structures with an ASE calculator, appending each frame to extxyz.

    Parameters
    ----------
    structures : iterable of ase.Atoms
        ``n`` structures (positions ``[N, 3]`` in Å); not modified.
    calculator : ase.calculators.calculator.Calculator
        Any ASE calculator (EMT, :func:`xtb_calculator`, DFT codes, ...).
    path : str or os.PathLike
        Output extxyz file; its folder is created if needed. Frames are
        appended one at a time, each flushed and fsynced.
    properties : sequence of str, optional
        Properties to compute and store, by their ASE names: ``"energy"``
        (eV, always computed), ``"forces"`` (``[N, 3]`` eV/Å), ``"stress"``
        (``[6]`` eV/Å³, computed only for fully periodic structures),
        ``"energies"`` (``[N]`` eV), ... .
    resume : bool, optional
        If ``path`` exists, keep its frames (after checking that they are
        the first structures, same atomic numbers, positions, cell and pbc,
        labelled with the requested properties) and compute only the rest.
        An incomplete last frame left by an interrupted write is dropped.
        ``False`` starts a new file, replacing an existing one.
    progress : bool, optional
        Show a tqdm progress bar.
    threads : int, optional
        Limit OpenMP threads of the calculator's library while labelling
        (see :func:`openmp_threads`); 1 is fastest for small molecules with
        :func:`xtb_calculator`. Default: unchanged.  With a local pool
        (``workers``) it is also each worker's ``OMP_NUM_THREADS``.
    executor : concurrent.futures.Executor, optional
        Compute frames in parallel through ``executor.submit`` (a
        ``ProcessPoolExecutor``, ``dask.distributed.Client.get_executor()``,
        a Parsl executor, ...).  The calculator, the structures and the
        results travel by pickle, so the calculator must be picklable (ASE
        calculators such as EMT and tblite's are) and is copied once per
        frame: state it accumulates in the workers does not come back.  The
        executor is not shut down.  Frames are still written in input order.
    workers : int, optional
        With no ``executor``: ``workers > 1`` labels through a local
        spawn-started ``ProcessPoolExecutor`` of that many processes (shut
        down at the end); ``None`` or 1: serial, in this process.
    max_pending : int, optional
        Frames submitted ahead of the last one written (default: 4 × the
        executor's ``_max_workers`` if it has one, else 64).  Bounds memory
        and the work lost when a frame fails.

    Returns
    -------
    list of ase.Atoms
        ``n`` labelled copies, results in a SinglePointCalculator, in input
        order (resumed frames as read back from the file).

    Raises
    ------
    ValueError
        If the existing file belongs to other structures or other properties
        (``resume=True``), or is not an extxyz file.
    LabellingError
        (a ``RuntimeError``) if the calculator fails or returns non-finite
        values; the message and ``.frame`` name the frame index. Frames
        before it are already on disk (with an executor: the lowest failed
        frame; frames after it that finished are not written).
    """
    from tqdm.auto import tqdm

    frames = list(structures)
    for k, atoms in enumerate(frames):
        if not isinstance(atoms, Atoms):
            raise TypeError(f"structure {k} is a {type(atoms).__name__}, expected ase.Atoms")
    properties = tuple(properties)
    if not all(isinstance(p, str) for p in properties):
        raise TypeError(f"properties must be names, got {properties!r}")
    if workers is not None and (not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(f"executor must be a concurrent.futures.Executor (with .submit), got {type(executor).__name__}")
    if max_pending is not None and (not isinstance(max_pending, (int, np.integer)) or max_pending < 1):
        raise ValueError(f"max_pending must be a positive integer or None, got {max_pending!r}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)

    done: list[Atoms] = []
    truncate_to: int | None = None
    if resume and p.exists():
        done, truncate_to = _load_existing(p, frames, properties)
    elif p.exists():
        p.unlink()
    if truncate_to is not None:
        warnings.warn(f"{p}: dropping an incomplete last frame left by an interrupted run", stacklevel=2)
        with open(p, "r+", encoding="utf-8") as fh:
            fh.seek(truncate_to)
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())  # the dropped frame stays dropped, like each appended frame stays written

    out = list(done)
    remaining = range(len(done), len(frames))
    own_pool = None
    if executor is None and workers is not None and workers > 1 and len(remaining):
        executor = own_pool = _local_pool(int(workers), threads)
    if executor is None:
        def results_in_order():
            with openmp_threads(threads):
                for k in remaining:
                    yield k, _compute(frames[k], calculator, properties, k)
    else:
        ahead = max_pending or 4 * int(getattr(executor, "_max_workers", 16) or 16)

        def results_in_order():
            return _parallel_results(executor, frames, calculator, properties, remaining, threads, ahead)
    bar = tqdm(total=len(frames), initial=len(done), disable=not progress, desc=f"labelling {p.name}", unit="frame")
    try:
        with open(p, "a", encoding="utf-8", newline="\n") as fh:
            for k, results in results_in_order():
                labelled = frames[k].copy()
                labelled.calc = SinglePointCalculator(labelled, **results)
                fh.write(extxyz_frame_text(labelled))
                fh.flush()
                os.fsync(fh.fileno())
                out.append(labelled)
                bar.update(1)
    finally:
        bar.close()
        if own_pool is not None:
            own_pool.shutdown(cancel_futures=True)
    return out
