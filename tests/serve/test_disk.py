"""`brain3d serve` on a full or read-only disk: an upload that finds no room is a 507 with one sentence (the
operator's log names the folder) and leaves nothing behind; a private-folder parent that cannot be written stops the
command before it listens, with one sentence naming the folder."""

from __future__ import annotations

import errno
import logging
import os

from brain3d.cli import main
from tests.disk import Disk, real_tmpfs, remount
from tests.serve.conftest import dicom_zip
from tests.serve.test_api import post


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_an_upload_that_finds_no_room_is_507_and_leaves_nothing(client, app, monkeypatch, caplog, tmp_path):
    from brain3d.serve import uploads

    sentence = "the server has no room for this upload (its upload folder is full or read-only); retry later"
    with monkeypatch.context() as m:  # the disk fills while the upload streams in
        m.setattr(uploads._PartSink, "_data", _enospc)
        with caplog.at_level(logging.ERROR, logger="brain3d.serve"):
            r = post(client, files={"files": ("a.nii.gz", b"x" * 1000)})
    assert (r.status_code, r.json()["error"]) == (507, sentence)
    assert str(app.state.service.tmp_root) in caplog.text and "no space is left on the device" in caplog.text
    body = dicom_zip(tmp_path)
    with monkeypatch.context() as m:  # ... while a DICOM zip is unpacked
        m.setattr(uploads.zipfile.ZipExtFile, "read", _enospc)
        r = post(client, files={"files": ("s.zip", body)})
    assert (r.status_code, r.json()["error"]) == (507, sentence)
    with monkeypatch.context() as m:  # ... or is read-only before the request's folder can be made
        disk = Disk(m)
        disk.read_only = True
        r = post(client, files={"files": ("a.nii.gz", b"x")})
    assert (r.status_code, r.json()["error"]) == (507, sentence)
    assert post(client, files={"files": ("s.zip", body)}).status_code == 200  # room again: as before
    # the `client` fixture checks that the private folder is empty again


def test_serve_stops_before_listening_when_its_folder_cannot_be_written(trained_checkpoint, tmp_path, capsys,
                                                                         monkeypatch):
    import brain3d.serve.server as server

    monkeypatch.setattr(server, "run", lambda *a: (_ for _ in ()).throw(AssertionError("it must not listen")))
    folder = tmp_path / "uploads"
    with monkeypatch.context() as m:
        disk = Disk(m)
        disk.read_only = True
        assert main(["serve", "--checkpoint", str(trained_checkpoint), "--tmp-dir", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {folder}: cannot write here: the file system is read-only; make it writable or choose "
                   "another folder, then start the service again")


def test_serve_on_a_real_read_only_tmpfs(trained_checkpoint, tmp_path, capsys, monkeypatch):
    import brain3d.serve.server as server

    monkeypatch.setattr(server, "run", lambda *a: (_ for _ in ()).throw(AssertionError("it must not listen")))
    with real_tmpfs(tmp_path) as disk:
        remount(disk, "ro")
        assert main(["serve", "--checkpoint", str(trained_checkpoint), "--tmp-dir", str(disk)]) == 2
        assert capsys.readouterr().err.startswith(f"error: {disk}: cannot write here: the file system is read-only")
