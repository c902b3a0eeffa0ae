import os
import stat

import pytest

from brain3d.fsutil import atomic_dir, atomic_write_text, stable_hash, stable_int


def test_atomic_write_replaces_whole_file_with_normal_permissions(tmp_path):
    p = atomic_write_text(tmp_path / "a" / "x.txt", "one")
    atomic_write_text(p, "two")
    assert p.read_text(encoding="utf-8") == "two"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
    assert [q.name for q in p.parent.iterdir()] == ["x.txt"]  # no temporary left behind


def test_atomic_dir_keeps_old_folder_on_failure(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "w").write_text("v1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "w").write_text("v2")
            raise RuntimeError("interrupted")
    assert (target / "w").read_text(encoding="utf-8") == "v1"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["ckpt"]


def test_stable_hash_is_process_independent():
    assert stable_hash("sub-001", 42) == stable_hash("sub-001", 42) != stable_hash("sub-001", 43)
    assert stable_hash("a") == "69fc94c033d1f48c"  # pinned: ids and seeds must not change between releases
    assert 0 <= stable_int("x") < 2**63


# ---- full and read-only disks ----

def test_a_full_disk_leaves_no_temporary_and_names_the_folder(tmp_path, monkeypatch):
    from brain3d.errors import OutputError
    from tests.disk import Disk, leftovers

    disk = Disk(monkeypatch, free=10)
    with pytest.raises(OutputError) as err:
        atomic_write_text(tmp_path / "out" / "x.txt", "more than ten bytes")
    assert str(err.value) == (f"{tmp_path / 'out'}: cannot write here: no space is left on the device; free space, "
                              "then rerun to resume (finished results are kept)")
    assert list((tmp_path / "out").iterdir()) == [] and leftovers(tmp_path) == []
    disk.free_space()
    atomic_write_text(tmp_path / "out" / "x.txt", "more than ten bytes")
    assert (tmp_path / "out" / "x.txt").read_text() == "more than ten bytes"


def test_append_is_all_or_nothing_and_a_torn_tail_is_dropped(tmp_path, monkeypatch):
    from brain3d.errors import OutputError
    from brain3d.fsutil import append_jsonl, append_jsonl_rows, read_jsonl
    from tests.disk import Disk

    path = tmp_path / "rows.jsonl"
    append_jsonl(path, {"id": 1})
    before = path.read_bytes()
    disk = Disk(monkeypatch, free=5)  # the next row is longer: a real disk would keep a torn half line
    with pytest.raises(OutputError, match="no space is left"):
        append_jsonl_rows(path, [{"id": 2}, {"id": 3}])
    assert path.read_bytes() == before
    disk.free_space()
    append_jsonl(path, {"id": 2})
    assert read_jsonl(path) == [{"id": 1}, {"id": 2}]
    with open(path, "a") as fh:  # a run killed mid-append (no rollback possible): the torn tail is not a row
        fh.write('{"id": 3, "rep')
    assert read_jsonl(path) == [{"id": 1}, {"id": 2}]
    path.write_text('{"id": 1}\n{"broken\n{"id": 2}\n')
    with pytest.raises(ValueError):  # a bad line in the middle is damage, not an interruption
        read_jsonl(path)


def test_read_only_folder_and_atomic_dir(tmp_path, monkeypatch):
    from brain3d.errors import OutputError
    from tests.disk import Disk, leftovers

    disk = Disk(monkeypatch)
    disk.read_only = True
    with pytest.raises(OutputError) as err:
        with atomic_dir(tmp_path / "ckpt") as tmp:
            (tmp / "w").write_text("v")
    assert str(err.value).startswith(f"{tmp_path}: cannot write here: the file system is read-only; make it "
                                     "writable or choose another folder")
    disk.free_space()
    with pytest.raises(OutputError, match="no space"):  # a writer of its own (safetensors) failing inside the block
        with atomic_dir(tmp_path / "ckpt") as tmp:
            raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    with pytest.raises(PermissionError):  # not a disk problem of the output folder: passes unchanged
        with atomic_dir(tmp_path / "ckpt") as tmp:
            raise PermissionError(13, "Permission denied", "/some/input")
    assert not (tmp_path / "ckpt").exists() and leftovers(tmp_path) == []


def test_on_a_real_full_tmpfs(tmp_path):
    """The real thing where the test may mount a 1 MB tmpfs: safetensors and plain writes, then read-only."""
    import torch
    from safetensors.torch import save_file

    from brain3d.errors import OutputError
    from tests.disk import leftovers, real_tmpfs, remount

    with real_tmpfs(tmp_path) as disk:
        with pytest.raises(OutputError, match="no space is left on the device"):
            with atomic_dir(disk / "ckpt") as tmp:
                save_file({"w": torch.zeros(1 << 19)}, str(tmp / "w.safetensors"))  # 2 MB
        with pytest.raises(OutputError, match="no space is left on the device"):
            atomic_write_text(disk / "big.txt", "x" * (2 << 20))
        assert list(disk.iterdir()) == [] and leftovers(disk) == []
        remount(disk, "ro")
        with pytest.raises(OutputError, match=f"^{disk}: cannot write here: the file system is read-only"):
            atomic_write_text(disk / "a.txt", "x")
