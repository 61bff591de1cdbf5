"""Five-minute tutorial: graph → model → forces → Hessian → locality plot.

Run: ``python examples/tutorial.py`` (writes ``tutorial_locality.png``).
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import jaxmlp  # noqa: E402
from jaxmlp.data.generate import alkane  # noqa: E402


def main(n_carbon: int = 12, out: str = "tutorial_locality.png") -> dict:
    # 1. a structure and its graph
    atoms = alkane(n_carbon)
    model = jaxmlp.models.morse(D=0.35, alpha=1.6, r0=1.3, cutoff=3.0)
    params = model.init(jax.random.PRNGKey(0), None)
    graph = jaxmlp.atoms_to_graph(atoms, model.cutoff)

    # 2. energy and forces (F = −∂E/∂R)
    energy, forces = jaxmlp.energy_and_forces(model, params, graph)

    # 3. analytic Hessian [3N, 3N] (eV/Å²), atom-major
    H = np.asarray(jaxmlp.hessian(model, params, graph))

    # 4. locality: ||h_AB|| vs distance, zero beyond 2·R_c for a local model
    norms = np.asarray(jaxmlp.analysis.locality.block_norms(H))
    dist = atoms.get_all_distances()
    off = ~np.eye(len(atoms), dtype=bool)
    beyond = off & (dist > model.interaction_range)
    result = {
        "n_atoms": len(atoms),
        "energy_eV": float(energy[0]),
        "max_force_eV_per_A": float(np.abs(np.asarray(forces)).max()),
        "hessian_asymmetry": float(np.abs(H - H.T).max()),
        "max_norm_beyond_2Rc": float(norms[beyond].max(initial=0.0)),
        "largest_nonzero_block_distance": float(dist[off & (norms > 0)].max()),
    }
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(dist[off], np.maximum(norms[off], 1e-16), ".", ms=3)
    ax.axvline(model.interaction_range, color="k", ls="--", label="2·R_c")
    ax.set_xlabel("|R_A − R_B| (Å)")
    ax.set_ylabel("||h_AB|| (eV/Å²)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    for k, v in result.items():
        print(f"{k:32s} {v}")
    return result


if __name__ == "__main__":
    main()
