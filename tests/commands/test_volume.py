import json

import nibabel as nib
import numpy as np

from brain3d.cli import main
from brain3d.io import read_volume
from tests.volumes import ras_grid, reoriented, save_nifti


def test_inspect_json_and_png(tmp_path, capsys):
    p = save_nifti(*reoriented(*ras_grid(), "LPS"), tmp_path / "lps.nii.gz")
    png = tmp_path / "preview.png"
    assert main(["inspect", str(p), "--json", "--png", str(png)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["stored_orientation"] == "LPS"
    assert info["shape_dhw"] == [56, 76, 64]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_table(tmp_path, capsys):
    p = save_nifti(*ras_grid(), tmp_path / "ras.nii")
    assert main(["inspect", str(p)]) == 0
    assert "RAS" in capsys.readouterr().out


def test_preprocess_writes_ras_model_space_nifti(tmp_path, capsys):
    p = save_nifti(*reoriented(*ras_grid(), "PSR"), tmp_path / "psr.nii.gz")
    out = tmp_path / "model.nii.gz"
    assert main(["preprocess", str(p), "--out", str(out), "--size", "16", "32", "32"]) == 0
    img = nib.load(str(out))
    assert "".join(nib.aff2axcodes(img.affine)) == "RAS"
    assert img.shape == (32, 32, 16)  # stored RAS (x, y, z) = (W, H, D)
    back = read_volume(out)
    assert back.shape == (16, 32, 32) and float(back.data.max()) <= 1.0


def test_bad_input_prints_one_line_and_exits_nonzero(tmp_path, capsys):
    code = main(["inspect", str(tmp_path / "missing.nii.gz")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"error: {tmp_path / 'missing.nii.gz'}: file not found"
    assert "Traceback" not in err


def test_preprocess_refuses_wrong_output_suffix(tmp_path, capsys):
    p = save_nifti(*ras_grid(), tmp_path / "ras.nii")
    assert main(["preprocess", str(p), "--out", str(tmp_path / "x.png")]) == 2
    assert "output must end in .nii or .nii.gz" in capsys.readouterr().err
