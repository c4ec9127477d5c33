"""Tests for dynajax._io: atomic writes and output-directory checks."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dynajax import _io
from dynajax._io import atomic_write_bytes, atomic_write_text, ensure_writable_dir


def _names(d):
    return sorted(p.name for p in d.iterdir())


def test_atomic_write_creates_and_replaces(tmp_path):
    path = tmp_path / "sub" / "dir" / "f.bin"  # parents are created
    atomic_write_bytes(path, b"first")
    assert path.read_bytes() == b"first"
    atomic_write_bytes(str(path), b"second, longer contents")
    assert path.read_bytes() == b"second, longer contents"
    atomic_write_bytes(path, b"")
    assert path.read_bytes() == b""
    assert _names(path.parent) == ["f.bin"]  # no temporary files left behind


def test_atomic_write_text_is_utf8(tmp_path):
    path = tmp_path / "t.md"
    text = "λ ← λ + τ·L  ✓\nline 2\n"
    atomic_write_text(path, text)
    assert path.read_bytes() == text.encode("utf-8")
    assert path.read_text(encoding="utf-8") == text


def test_failed_replace_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    path.write_bytes(b"old")

    def boom(src, dst):
        assert os.path.exists(src) and os.path.dirname(src) == str(tmp_path)
        raise OSError("disk full")

    monkeypatch.setattr(_io.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new contents")
    assert path.read_bytes() == b"old"
    assert _names(tmp_path) == ["f.json"]


@pytest.mark.parametrize("exc", [OSError("write failed"), KeyboardInterrupt()])
def test_failure_midway_keeps_old_file(tmp_path, monkeypatch, exc):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    real_fdopen = os.fdopen

    class HalfWriter:
        """Writes half of the data to the temporary file, then fails."""

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise exc

    monkeypatch.setattr(_io.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(type(exc)):
        atomic_write_bytes(path, b"0123456789" * 100)
    assert path.read_bytes() == b"old"
    assert _names(tmp_path) == ["f.bin"]


def test_failed_fsync_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "new.bin"

    def boom(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(_io.os, "fsync", boom)
    with pytest.raises(OSError, match="fsync failed"):
        atomic_write_bytes(path, b"data")
    assert _names(tmp_path) == []


def test_interrupted_checkpoint_keeps_previous_one(tmp_path, monkeypatch):
    import jax.numpy as jnp

    from dynajax.train import load_checkpoint, save_checkpoint

    path = tmp_path / "ck.npz"
    save_checkpoint(path, {"w": jnp.arange(3.0)})
    monkeypatch.setattr(_io.os, "replace", lambda s, d: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError):
        save_checkpoint(path, {"w": jnp.full(3, 9.0)})
    monkeypatch.undo()
    np.testing.assert_array_equal(load_checkpoint(path, {"w": jnp.zeros(3)})["w"], [0.0, 1.0, 2.0])
    assert _names(tmp_path) == ["ck.npz"]


def test_ensure_writable_dir_creates_parents(tmp_path):
    d = tmp_path / "a" / "b" / "c"
    out = ensure_writable_dir(str(d))
    assert out == d and d.is_dir()
    assert ensure_writable_dir(d) == d  # idempotent on an existing directory


def test_ensure_writable_dir_under_a_file(tmp_path):
    f = tmp_path / "regular_file"
    f.write_text("x")
    with pytest.raises(ValueError, match="cannot create"):
        ensure_writable_dir(f / "sub")
    with pytest.raises(ValueError, match="cannot create"):
        ensure_writable_dir(f)  # the path itself is a file, not a directory
    with pytest.raises(ValueError):
        atomic_write_bytes(f / "sub" / "out.bin", b"data")
    assert f.read_text() == "x"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores modes")
def test_ensure_writable_dir_read_only(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="not writable"):
            ensure_writable_dir(d)
    finally:
        d.chmod(0o700)


def test_ensure_writable_dir_reports_access(tmp_path, monkeypatch):
    # os.access is what decides writability (root bypasses chmod, so simulate it).
    monkeypatch.setattr(_io.os, "access", lambda p, mode: False)
    with pytest.raises(ValueError, match="not writable"):
        ensure_writable_dir(tmp_path)
