"""The shared utilities: atomic writes leave no partial file, strict JSON, one dtype cast."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxmlp.utils import atomic_write, cast_floats, json_ready, write_json


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("old")

    def boom(fh):
        fh.write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(p, boom)
    assert p.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


def test_atomic_write_replaces_symlink_not_its_target(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "link.txt"
    link.symlink_to(victim)
    atomic_write(link, lambda fh: fh.write("new"))
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and link.read_text() == "new"


def test_atomic_write_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        atomic_write(tmp_path / "nope" / "f.txt", lambda fh: fh.write("x"))
    atomic_write(tmp_path / "yes" / "f.bin", lambda fh: fh.write(b"\x00\x01"), binary=True, make_parents=True)
    assert (tmp_path / "yes" / "f.bin").read_bytes() == b"\x00\x01"


def test_write_json_is_strict(tmp_path):
    p = write_json(tmp_path / "r.json", {"a": np.float64(np.nan), "b": np.arange(3), "c": [float("inf"), 1.5], 4: jnp.float32(2.0)})
    text = p.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [0, 1, 2], "c": [None, 1.5], "4": 2.0}
    assert json_ready((np.int32(3), np.bool_(True))) == [3, True]


def test_cast_floats_keeps_integers_and_containers():
    tree = {"w": np.ones(3), "i": np.arange(3, dtype=np.int32), "j": jnp.ones(2, jnp.float64), "none": None}
    out = cast_floats(tree, np.float32)
    assert out["w"].dtype == np.float32 and isinstance(out["w"], np.ndarray)
    assert out["i"].dtype == np.int32
    assert out["j"].dtype == jnp.float32
    assert out["none"] is None
    with pytest.raises(TypeError, match="floating"):
        cast_floats(tree, np.int32)
