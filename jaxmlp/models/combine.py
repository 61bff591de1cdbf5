"""Sums of models: ``E = Σ_k E_k`` per atom, e.g. a learned HDNNP plus a repulsive core.

``sum_models(a, b, ...)`` is a model of the family like any other: its
``params`` are the tuple ``(params_a, params_b, ...)`` of its parts' params,
so a part without parameters (:func:`~jaxmlp.models.repulsion.zbl_repulsion`
returns ``()``) gives the optimiser nothing to move and training changes only
the learned parts.  Its ``config`` holds the parts' registry names and
configs, so :func:`jaxmlp.save` / :func:`jaxmlp.load` re-create it.

Metadata: ``cutoff`` and ``n_layers`` are the largest of the parts' (so
``interaction_range`` covers every part), ``local`` holds if every part is
local, ``needs_triplets`` if any part needs them, ``elements`` are those
every part knows (None if no part restricts them).  ``extras`` carry the
metadata of the learned parts that does not take parameters
(``"descriptor"``, ``"bases"``, ``"n_functions"``; ``"triplet_filter"`` when
exactly one part needs triplets — with two, no filter could serve both) and
add ``"parts"`` (the part models, in order) and ``"learned"`` (indices of
the parts with parameters).  Extras that take a part's params (ml-ACE's
``"layer_outputs"``) are not carried: call ``extras["parts"][k].extras[...]``
with ``params[k]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax

from .base import Model, build_model, register_model
from .repulsion import core_radii, zbl_repulsion

__all__ = ["sum_models", "with_core_repulsion"]

_CARRIED = ("descriptor", "bases", "n_functions")


def _has_leaves(tree) -> bool:
    return len(jax.tree_util.tree_leaves(tree)) > 0


@register_model("sum")
def sum_models(*models: Model, parts: Sequence[Mapping] | None = None) -> Model:
    """A model whose per-atom energies are the sum of those of ``models``.

    Parameters
    ----------
    *models : Model
        Two or more models (any registered models: learned or fixed).
    parts : list of ``{"model": name, "config": dict}``, optional
        The saved form (``config["parts"]``), used by :func:`jaxmlp.load`;
        give either ``models`` or ``parts``.

    Returns
    -------
    Model
        ``name="sum"``, ``params`` = tuple of the parts' params (see the
        module docstring for the metadata).

    Raises
    ------
    TypeError
        If a part is not a :class:`Model`.
    ValueError
        For fewer than two parts, both or neither of ``models``/``parts``,
        malformed ``parts`` entries, or parts with no element in common.
    """
    if parts is not None:
        if models:
            raise ValueError("give the parts as models or as saved 'parts' entries, not both")
        if isinstance(parts, (str, bytes, Mapping)) or not isinstance(parts, Sequence):
            raise TypeError(f"parts must be a list of {{'model', 'config'}} entries, got {type(parts).__name__}")
        built = []
        for k, entry in enumerate(parts):
            if not (isinstance(entry, Mapping) and set(entry) == {"model", "config"} and isinstance(entry["config"], Mapping)):
                raise ValueError(f"parts[{k}] must be {{'model': name, 'config': dict}}, got {entry!r}")
            built.append(build_model(entry["model"], dict(entry["config"])))
        models = tuple(built)
    for k, m in enumerate(models):
        if not isinstance(m, Model):
            raise TypeError(f"sum_models: part {k} is not a jaxmlp Model but {type(m).__name__}")
    if len(models) < 2:
        raise ValueError(f"sum_models needs at least two models, got {len(models)}")
    models = tuple(models)

    restricted = [set(m.elements) for m in models if m.elements is not None]
    elements = None
    if restricted:
        common = set.intersection(*restricted)
        if not common:
            raise ValueError(f"the parts share no element: {[sorted(s) for s in restricted]}")
        elements = tuple(sorted(common))

    def init(key, graph=None):
        keys = jax.random.split(key, len(models))
        return tuple(m.init(k, graph) for m, k in zip(models, keys))

    def apply(params, graph):
        if not isinstance(params, (tuple, list)) or len(params) != len(models):
            raise ValueError(f"params of a sum of {len(models)} models must be a tuple of {len(models)} parts' params")
        out = None
        for m, p in zip(models, params):
            e = m.apply(p, graph)
            out = e if out is None else out + e
        return out

    # the learned parts: those whose init gives parameters (checked without a graph where the part allows it)
    learned = []
    for k, m in enumerate(models):
        try:
            shapes = jax.eval_shape(lambda key, m=m: m.init(key, None), jax.random.PRNGKey(0))
        except Exception:  # noqa: BLE001 - a part that needs an example graph to initialise: assume learned
            shapes = (0,)
        if _has_leaves(shapes):
            learned.append(k)
    extras: dict = {"parts": models, "learned": tuple(learned)}
    for k in learned or range(len(models)):
        for key in _CARRIED:
            if key in models[k].extras and key not in extras:
                extras[key] = models[k].extras[key]
    triplet_parts = [m for m in models if m.needs_triplets]
    if len(triplet_parts) == 1 and triplet_parts[0].extras.get("triplet_filter") is not None:
        extras["triplet_filter"] = triplet_parts[0].extras["triplet_filter"]

    config = {"parts": [{"model": m.name, "config": m.config} for m in models]}
    return Model("sum", config, max(float(m.cutoff) for m in models), init, apply,
                 needs_triplets=any(m.needs_triplets for m in models), elements=elements,
                 n_layers=max(int(m.n_layers) for m in models), local=all(m.local for m in models), extras=extras)


def with_core_repulsion(model: Model, r_in=None, frames=None, margin: float = 0.05, width: float = 0.3) -> Model:
    """``sum_models(model, zbl_repulsion(model.elements, r_in, width))``: ``model`` plus a ZBL core.

    Parameters
    ----------
    model : Model
        The learned model; must name its elements.
    r_in : float or dict ``"A-B"`` → Å, optional
        Inner radii of the core term; default :func:`core_radii` of
        ``frames`` with ``margin``.
    frames : sequence of ase.Atoms, optional
        Training structures that set ``r_in`` when it is not given.
    margin, width : float
        See :func:`core_radii` and :func:`zbl_repulsion`.

    Returns
    -------
    Model
        Params ``(model_params, ())``: pass ``(params, ())`` to reuse the
        params of a trained ``model``.
    """
    if not isinstance(model, Model):
        raise TypeError(f"with_core_repulsion expects a jaxmlp Model, got {type(model).__name__}")
    if model.elements is None:
        raise ValueError(f"with_core_repulsion needs a model that names its elements; {model.name} does not")
    if r_in is None:
        if frames is None:
            raise ValueError("with_core_repulsion needs r_in or frames to pick it from (core_radii)")
        r_in = core_radii(frames, model.elements, margin=margin)
    return sum_models(model, zbl_repulsion(list(model.elements), r_in, width))
