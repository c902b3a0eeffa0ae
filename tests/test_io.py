import gzip
import re

import nibabel as nib
import numpy as np
import pytest

from brain3d.errors import VolumeError
from brain3d.io import read_sequences, read_volume, write_nifti
from brain3d.preprocess import PreprocessConfig, load_for_model
from tests.volumes import (BLOB_WORLD, oblique_grid, ras_grid, reoriented, save_nifti, voxel_world, world_image,
                           write_dicom_series)

CFG = PreprocessConfig(size=(16, 32, 32))


@pytest.fixture(scope="module")
def ras():
    return ras_grid()


@pytest.mark.parametrize("codes", ["RAS", "LAS", "LPS", "PSR", "ILA"])
def test_every_storage_orientation_reads_to_the_same_model_array(tmp_path, ras, codes):
    data, affine = ras
    ref = read_volume(save_nifti(data, affine, tmp_path / "ras.nii.gz"))
    stored, stored_affine = reoriented(data, affine, codes)
    vol = read_volume(save_nifti(stored, stored_affine, tmp_path / f"{codes}.nii.gz"))
    assert "".join(vol.orientation) == codes
    np.testing.assert_array_equal(vol.data, ref.data)
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-6)


def test_model_axes_are_superior_anterior_right(tmp_path, ras):
    data, affine = ras
    stored, stored_affine = reoriented(data, affine, "LPS")
    vol = read_volume(save_nifti(stored, stored_affine, tmp_path / "lps.nii"))
    origin = vol.affine @ np.array([0, 0, 0, 1.0])
    step = vol.affine[:3, :3]
    assert step[2, 0] > 0 and step[1, 1] > 0 and step[0, 2] > 0  # d→+z (S), h→+y (A), w→+x (R)
    assert origin[0] < 0  # W index 0 is the patient's far left


@pytest.mark.parametrize("codes", ["RAS", "LAS", "LPS", "PSR"])
def test_left_blob_lands_in_left_half_of_w(tmp_path, ras, codes):
    stored, stored_affine = reoriented(*ras, codes)
    mv = load_for_model(save_nifti(stored, stored_affine, tmp_path / "v.nii.gz"), CFG)
    x = mv.tensor[0].numpy()  # (D, H, W)
    d, h, w = np.argwhere(x >= 0.99).mean(axis=0)  # centroid of the saturated blob core
    assert w < x.shape[2] / 2
    world = mv.affine @ np.array([d, h, w, 1.0])
    assert np.linalg.norm(world[:3] - np.array(BLOB_WORLD)) < 12.0  # model index → world mapping is right


def test_thick_slices_give_the_same_tensor_within_interpolation(tmp_path, ras):
    data, affine = ras
    thick_shape, spacing = (160, 190, 46), (1.0, 1.0, 3.0)
    taff = np.diag([*spacing, 1.0])
    taff[:3, 3] = -(np.array(thick_shape) - 1) / 2 * np.array(spacing)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in thick_shape], indexing="ij"), axis=-1)
    thick = world_image(idx @ taff[:3, :3].T + taff[:3, 3])
    # the two grids cover slightly different boxes: compare inside a common field of view
    a = load_for_model(save_nifti(data, affine, tmp_path / "iso.nii.gz"), CFG).tensor[0].numpy()
    b = load_for_model(save_nifti(*reoriented(thick, taff, "LPS"), tmp_path / "thick.nii.gz"), CFG).tensor[0].numpy()
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.97
    assert abs(np.argwhere(a >= 0.99).mean(0) - np.argwhere(b >= 0.99).mean(0)).max() < 1.5  # same blob place
    assert np.argwhere(b >= 0.99).mean(0)[2] < 16


def test_dicom_series_reads_back_to_the_nifti_tensor(tmp_path, ras):
    data, affine = ras
    data16 = np.round(data).astype(np.int16)
    stored, stored_affine = reoriented(data16, affine, "LPS")
    folder = write_dicom_series(stored, stored_affine, tmp_path / "dcm", "1.2.826.0.1.3680043.8.498.77")
    from_dicom = read_volume(folder)
    from_nifti = read_volume(save_nifti(data16.astype(np.float32), affine, tmp_path / "ref.nii"))
    np.testing.assert_allclose(from_dicom.data, from_nifti.data, atol=1e-3)
    np.testing.assert_allclose(from_dicom.affine, from_nifti.affine, atol=1e-3)


def test_dicom_folder_with_two_series_needs_a_choice(tmp_path, ras):
    data, affine = ras
    small = np.round(data[::4, ::4, ::4]).astype(np.int16)
    aff = affine.copy()
    aff[:3, :3] *= 4
    write_dicom_series(small, aff, tmp_path / "mixed", "1.2.3.1")
    write_dicom_series(small + 5, aff, tmp_path / "mixed", "1.2.3.2")
    folder = re.escape(str(tmp_path / "mixed"))
    with pytest.raises(VolumeError, match=rf"^{folder}: holds 2 DICOM series; choose one with --series-uid: "
                                          r"1\.2\.3\.[12], 1\.2\.3\.[12]$"):
        read_volume(tmp_path / "mixed")
    vol = read_volume(tmp_path / "mixed", series_uid="1.2.3.2")
    assert vol.data.min() >= 5
    with pytest.raises(VolumeError, match=rf"^{folder}: has no DICOM series 9\.9 \(found: 1\.2\.3\.[12], 1\.2\.3\.[12]\)$"):
        read_volume(tmp_path / "mixed", series_uid="9.9")


def test_nrrd_and_mha_read_like_nifti(tmp_path, ras):
    import SimpleITK as sitk

    data, affine = ras
    ref = read_volume(save_nifti(data, affine, tmp_path / "ref.nii"))
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / "ref.nii")), str(tmp_path / "v.nrrd"))
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / "ref.nii")), str(tmp_path / "v.mha"))
    for name in ("v.nrrd", "v.mha"):
        vol = read_volume(tmp_path / name)
        np.testing.assert_allclose(vol.data, ref.data, atol=1e-4)
        np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-4)


def test_multisequence_channels_resampled_onto_first_grid(tmp_path, ras):
    data, affine = ras
    a = save_nifti(data, affine, tmp_path / "flair.nii.gz")
    b = save_nifti(*reoriented(data * 2, affine, "LPS"), tmp_path / "t1.nii.gz")
    shifted = affine.copy()
    shifted[:3, :3] *= 2  # coarser grid covering the same centre
    shifted[:3, 3] = -(np.array(data.shape[:3]) // 2 - 1) / 2 * 2 * 2.5
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in (32, 38, 28)], indexing="ij"), axis=-1)
    coarse = world_image(idx @ shifted[:3, :3].T + shifted[:3, 3])
    c = save_nifti(coarse, shifted, tmp_path / "t2.nii.gz")
    vol = read_sequences([a, b, c], names=["flair", "t1", "t2"])
    assert vol.data.shape == (3, *read_volume(a).shape)
    assert vol.sequences == ("flair", "t1", "t2")
    np.testing.assert_allclose(vol.data[1], 2 * vol.data[0], rtol=1e-5)
    inside = vol.data[2] > 0
    assert np.corrcoef(vol.data[0][inside], vol.data[2][inside])[0, 1] > 0.95


def test_write_nifti_round_trips_model_space(tmp_path, ras):
    vol = read_volume(save_nifti(*reoriented(*ras, "PSR"), tmp_path / "psr.nii.gz"))
    out = write_nifti(vol.data, vol.affine, tmp_path / "out.nii.gz")
    img = nib.load(str(out))
    assert "".join(nib.aff2axcodes(img.affine)) == "RAS"
    assert int(img.header["sform_code"]) == 1
    back = read_volume(out)
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
    assert gzip.decompress(out.read_bytes())  # a valid gzip stream


@pytest.mark.parametrize("codes", ["LPS", "PSR", "RAS"])
def test_write_nifti_on_the_scans_own_stored_grid(tmp_path, ras, codes):
    stored, affine = reoriented(*ras, codes)
    vol = read_volume(save_nifti(stored, affine, tmp_path / f"{codes}.nii.gz"))
    out = nib.load(str(write_nifti(vol.data, vol.affine, tmp_path / "map.nii.gz", stored_as=vol.orientation)))
    assert out.shape == stored.shape and "".join(nib.aff2axcodes(out.affine)) == codes
    np.testing.assert_allclose(out.affine, affine, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(out.dataobj), stored)  # voxel for voxel the scan's own array


def test_resample_array_nearest_keeps_labels(ras):
    from brain3d.io import resample_array

    labels = np.zeros((6, 6, 6), np.float32)
    labels[:3] = 2.0
    labels[3:] = 5.0
    src = np.diag([2.0, 2.0, 2.0, 1.0])
    out = resample_array(labels, src, np.diag([1.0, 1.0, 1.0, 1.0]), (12, 12, 12), order=0)
    assert set(np.unique(out[:11, :11, :11])) == {2.0, 5.0}  # no blended label inside the source grid
    assert (out[:5, :11, :11] == 2.0).all() and (out[7:11, :11, :11] == 5.0).all()
    assert (out[11:] == 0).all()  # beyond the source grid


# ---- bad input: every case has its own clear message ----


def test_missing_file(tmp_path):
    with pytest.raises(VolumeError, match=r"nope\.nii\.gz: file not found"):
        read_volume(tmp_path / "nope.nii.gz")


def test_unreadable_file(tmp_path):
    p = tmp_path / "junk.nii"
    p.write_bytes(b"this is not a nifti header at all" * 3)
    with pytest.raises(VolumeError, match=r"junk\.nii: cannot be read as NIfTI"):
        read_volume(p)


def test_truncated_file(tmp_path, ras):
    p = save_nifti(*ras, tmp_path / "full.nii.gz")
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(VolumeError, match=r"cut\.nii\.gz: is truncated or corrupt"):
        read_volume(cut)


def test_2d_image(tmp_path):
    p = save_nifti(np.random.rand(32, 32).astype(np.float32), np.eye(4), tmp_path / "slice.nii")
    with pytest.raises(VolumeError, match=r"slice\.nii: is a 2D image"):
        read_volume(p)


def test_4d_without_choice_and_with_choice(tmp_path):
    data = np.random.rand(8, 8, 8, 3).astype(np.float32)
    p = save_nifti(data, np.eye(4), tmp_path / "dwi.nii")
    with pytest.raises(VolumeError, match=r"dwi\.nii: is 4D with 3 volumes; choose one with --volume-index"):
        read_volume(p)
    np.testing.assert_array_equal(read_volume(p, volume_index=2).data, np.transpose(data[..., 2], (2, 1, 0)))
    with pytest.raises(VolumeError, match="has no volume 7"):
        read_volume(p, volume_index=7)


def test_nan_voxels(tmp_path):
    data = np.random.rand(8, 8, 8).astype(np.float32)
    data[1, 2, 3] = np.nan
    data[2, 2, 3] = np.inf
    with pytest.raises(VolumeError, match=r"nan\.nii: contains 2 NaN or infinite voxels"):
        read_volume(save_nifti(data, np.eye(4), tmp_path / "nan.nii"))


def test_constant_volume(tmp_path):
    with pytest.raises(VolumeError, match=r"empty\.nii: is constant \(every voxel is 0\)"):
        read_volume(save_nifti(np.zeros((8, 8, 8), np.float32), np.eye(4), tmp_path / "empty.nii"))


def test_absurdly_large_volume_is_refused_before_loading(tmp_path):
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    img.header.set_data_shape((2000, 2000, 2000))
    p = tmp_path / "huge.nii"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), str(p))
    raw = bytearray(p.read_bytes())
    hdr = nib.Nifti1Header.from_fileobj(__import__("io").BytesIO(bytes(raw)))
    hdr.set_data_shape((2000, 2000, 2000))
    p.write_bytes(hdr.binaryblock + bytes(raw[len(hdr.binaryblock):]))
    with pytest.raises(VolumeError, match=r"huge\.nii: is too large \(2000×2000×2000"):
        read_volume(p)


def test_unsupported_extension_and_single_dicom(tmp_path):
    (tmp_path / "scan.png").write_bytes(b"x")
    with pytest.raises(VolumeError, match="unsupported file type"):
        read_volume(tmp_path / "scan.png")
    (tmp_path / "one.dcm").write_bytes(b"x")
    with pytest.raises(VolumeError, match="single DICOM file; pass the folder"):
        read_volume(tmp_path / "one.dcm")


def test_trailing_singleton_axes_and_volume_index_of_a_3d_scan(tmp_path):
    data = np.random.default_rng(0).random((6, 7, 5)).astype(np.float32)
    p = save_nifti(data[..., None], np.eye(4), tmp_path / "one.nii")  # (X, Y, Z, 1): a 3D scan
    vol = read_volume(p)
    assert vol.shape == (5, 7, 6) and vol.data.ndim == 3
    np.testing.assert_array_equal(read_volume(p, volume_index=0).data, vol.data)  # the one volume there is
    with pytest.raises(VolumeError, match=r"one\.nii: is 3D; --volume-index 2 does not exist"):
        read_volume(p, volume_index=2)
    with pytest.raises(VolumeError, match=r"five\.nii: has 5 dimensions \(shape \(6, 7, 5, 2, 2\)\); expected a 3D volume"):
        read_volume(save_nifti(np.zeros((6, 7, 5, 2, 2), np.float32) + data[..., None, None], np.eye(4),
                               tmp_path / "five.nii"))
    with pytest.raises(VolumeError, match=r"neg\.nii: has no volume -1 \(0\.\.2\)"):
        read_volume(save_nifti(np.stack([data] * 3, axis=-1), np.eye(4), tmp_path / "neg.nii"), volume_index=-1)


def _with_sform(data: np.ndarray, affine: np.ndarray, path):
    """A NIfTI whose only orientation is the sform `affine` (nibabel cannot write a singular qform)."""
    img = nib.Nifti1Image(data, np.eye(4))
    img.set_qform(None, code=0)
    img.set_sform(affine, code=2)
    nib.save(img, str(path))
    return path


def test_singular_and_non_finite_affines_are_refused(tmp_path):
    data = np.random.default_rng(1).random((6, 7, 5)).astype(np.float32)
    flat = np.diag([1.0, 1.0, 0.0, 1.0])
    with pytest.raises(VolumeError, match=r"flat\.nii: has an invalid \(singular or non-finite\) orientation matrix"):
        read_volume(_with_sform(data, flat, tmp_path / "flat.nii"))
    with pytest.raises(VolumeError, match="invalid"):
        read_volume(_with_sform(data, np.diag([1.0, np.inf, 1.0, 1.0]), tmp_path / "inf.nii"))
    tiny = np.diag([1e-4, 1e-4, 1e-4, 1.0])  # determinant 1e-12: singular for the reader
    with pytest.raises(VolumeError, match="invalid"):
        read_volume(_with_sform(data, tiny, tmp_path / "tiny.nii"))
    ok = np.diag([2e-3, 1.0, 1.0, 1.0])  # determinant 2e-3: thin but valid
    assert read_volume(_with_sform(data, ok, tmp_path / "thin.nii")).spacing == pytest.approx((1.0, 1.0, 2e-3))


def test_itk_images_that_are_not_scalar_3d_volumes_are_refused(tmp_path):
    import SimpleITK as sitk

    flat = sitk.GetImageFromArray(np.random.default_rng(2).random((8, 9)).astype(np.float32))
    sitk.WriteImage(flat, str(tmp_path / "slice.mha"))
    with pytest.raises(VolumeError, match=r"slice\.mha: is a 2D image, not a 3D volume"):
        read_volume(tmp_path / "slice.mha")
    rgb = sitk.GetImageFromArray(np.random.default_rng(3).integers(0, 255, (4, 5, 6, 3)).astype(np.uint8),
                                 isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.nrrd"))
    with pytest.raises(VolumeError, match=r"rgb\.nrrd: has multi-component \(e\.g\. RGB\) voxels"):
        read_volume(tmp_path / "rgb.nrrd")
    vol = sitk.GetImageFromArray(np.random.default_rng(4).random((4, 5, 6)).astype(np.float32))
    sitk.WriteImage(vol, str(tmp_path / "big.mha"))
    with pytest.raises(VolumeError, match=r"big\.mha: is too large \(6×5×4 = 120 voxels, limit 100\)"):
        read_volume(tmp_path / "big.mha", max_voxels=100)
    assert read_volume(tmp_path / "big.mha", max_voxels=120).shape == (4, 5, 6)  # the limit itself is allowed
    (tmp_path / "junk.mha").write_bytes(b"ObjectType = Image\nNDims = 3\n")
    # the MetaImage header check (brain3d.headers) refuses it before ITK reads it
    with pytest.raises(VolumeError, match=r"junk\.mha: has no end to its header \(the ElementDataFile line\)$") as err:
        read_volume(tmp_path / "junk.mha")
    assert "(None)" not in str(err.value)  # the reader's own reason, not a placeholder


def test_a_one_slice_dicom_series_and_a_too_large_series_are_refused(tmp_path, ras):
    data, affine = ras
    small = np.round(data[::8, ::8, ::8]).astype(np.int16)
    aff = affine.copy()
    aff[:3, :3] *= 8
    one = write_dicom_series(small[:, :, 3:4], aff, tmp_path / "one", "1.2.3.9")
    with pytest.raises(VolumeError, match=rf"^{re.escape(str(one))}: DICOM series 1\.2\.3\.9 has a single slice, not a 3D volume$"):
        read_volume(one)
    many = write_dicom_series(small, aff, tmp_path / "many", "1.2.3.10")
    n = small.size
    with pytest.raises(VolumeError, match=rf"^{re.escape(str(many))}: DICOM series .* is too large \(.* voxels, limit {n - 1}\)"):
        read_volume(many, max_voxels=n - 1)
    assert read_volume(many, max_voxels=n).data.size == n


def test_write_nifti_plain_and_gzip_and_from_a_tensor(tmp_path, ras):
    import torch

    vol = read_volume(save_nifti(*reoriented(*ras, "LPS"), tmp_path / "lps.nii.gz"))
    plain = write_nifti(torch.from_numpy(vol.data).requires_grad_(), vol.affine, tmp_path / "map.nii")  # an attribution
    assert plain.read_bytes()[344:348] == b"n+1\0"  # an uncompressed single-file NIfTI-1
    zipped = write_nifti(vol.data, vol.affine, tmp_path / "map.nii.gz")
    assert zipped.read_bytes()[:2] == b"\x1f\x8b"
    assert zipped.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0: the same map gives the same bytes
    assert write_nifti(vol.data.astype(np.float64), vol.affine, tmp_path / "again.nii.gz").read_bytes() == zipped.read_bytes()
    for path in (plain, zipped):
        img = nib.load(str(path))
        back = read_volume(path)
        np.testing.assert_array_equal(back.data, vol.data)
        assert img.get_data_dtype() == np.float32
        ras_affine = img.affine
        np.testing.assert_allclose(img.get_qform(), ras_affine, atol=1e-5)  # both qform and sform say it
        np.testing.assert_allclose(img.get_sform(), ras_affine, atol=1e-5)
        assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1


def test_sequences_keep_their_names_and_an_empty_list_is_refused(tmp_path, ras):
    data, affine = ras
    a = save_nifti(data, affine, tmp_path / "flair.nii.gz")
    b = save_nifti(data * 3, affine, tmp_path / "t2.nii.gz")
    vol = read_sequences([a, b])
    assert vol.sequences == ("flair.nii.gz", "t2.nii.gz")  # file names when no names are given
    np.testing.assert_allclose(vol.data[1], 3 * vol.data[0], rtol=1e-6)  # same grid: taken as is
    with pytest.raises(VolumeError, match="no input volume given"):
        read_sequences([])


def test_error_detail_is_the_first_line_of_the_cause_cut_at_200_characters():
    from brain3d.io import _short

    assert _short(ValueError("first line\nsecond line")) == "first line"
    assert _short(ValueError("x" * 300)) == "x" * 200
    assert _short(ValueError("")) == "ValueError"


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeError, match=rf"^{re.escape(str(tmp_path / 'empty'))}: is a folder without a readable DICOM series$"):
        read_volume(tmp_path / "empty")


def test_a_two_slice_dicom_series_is_a_volume(tmp_path, ras):
    data, affine = ras
    small = np.round(data[::8, ::8, ::8]).astype(np.int16)
    aff = affine.copy()
    aff[:3, :3] *= 8
    vol = read_volume(write_dicom_series(small[:, :, 3:5], aff, tmp_path / "two", "1.2.3.11"))
    assert vol.shape == (2, small.shape[1], small.shape[0])


def test_4d_and_two_component_itk_images(tmp_path):
    import SimpleITK as sitk

    series = np.random.default_rng(5).random((3, 4, 5, 6)).astype(np.float32)  # (t, k, j, i)
    img = sitk.JoinSeries([sitk.GetImageFromArray(v) for v in series])
    img.SetSpacing((2.0, 3.0, 4.0, 1.0))
    sitk.WriteImage(img, str(tmp_path / "dwi.nrrd"))
    with pytest.raises(VolumeError, match=r"dwi\.nrrd: is 4D with 3 volumes; choose one with --volume-index \(0\.\.2\)"):
        read_volume(tmp_path / "dwi.nrrd")
    vol = read_volume(tmp_path / "dwi.nrrd", volume_index=1)
    # ITK's identity direction is LPS: i runs to the patient's left, j posterior, so in model axes both reverse
    np.testing.assert_array_equal(vol.data, series[1][:, ::-1, ::-1])
    assert vol.spacing == pytest.approx((4.0, 3.0, 2.0))
    two = sitk.GetImageFromArray(np.random.default_rng(6).random((4, 5, 6, 2)).astype(np.float32), isVector=True)
    sitk.WriteImage(two, str(tmp_path / "pair.mha"))
    with pytest.raises(VolumeError, match=r"pair\.mha: has multi-component"):
        read_volume(tmp_path / "pair.mha")


def test_resampling_through_world_coordinates_is_linear_by_default_and_shifts_the_right_way(ras):
    from brain3d.io import Volume, resample_array, resample_to

    ramp = np.broadcast_to(np.arange(10, dtype=np.int16)[None, None, :], (4, 5, 10)).copy()  # value = w index
    target = np.eye(4)
    target[2, 3] = 2.5  # the target grid starts 2.5 voxels further along w
    out = resample_array(ramp, np.eye(4), target, (4, 5, 6))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [2.5, 3.5, 4.5, 5.5, 6.5, 7.5], atol=1e-6)  # linear, not cubic or nearest
    beyond = resample_array(ramp.astype(np.float32), np.eye(4), target, (4, 5, 8))
    assert (beyond[0, 0, 7:] == 0).all()  # outside the source grid: 0
    vol = Volume(ramp.astype(np.float32), np.eye(4), (1.0, 1.0, 1.0), ("R", "A", "S"), "ramp")
    target[2, 3] = 2.0
    np.testing.assert_array_equal(resample_to(vol, target, (4, 5, 6))[0, 0], [2, 3, 4, 5, 6, 7])
    target[2, 3] = 2.3
    np.testing.assert_array_equal(resample_to(vol, target, (4, 5, 6), order=0)[0, 0], [2, 3, 4, 5, 6, 7])  # nearest



# ---- oblique acquisitions (direction cosines 35 and 40 degrees off the patient's axes), against their own headers ----


@pytest.fixture(scope="module")
def oblique():
    return oblique_grid()


def _same_voxels_through_the_files_affine(vol, stored: np.ndarray, file_affine: np.ndarray, atol: float = 1e-3):
    """Every model voxel sits at an integer voxel of the stored file (through the file's own affine, read with
    nibabel / pydicom) and carries that voxel's value."""
    model_idx = np.indices(vol.shape).reshape(3, -1).T.astype(np.float64)
    world = model_idx @ vol.affine[:3, :3].T + vol.affine[:3, 3]
    inv = np.linalg.inv(file_affine)
    stored_idx = world @ inv[:3, :3].T + inv[:3, 3]
    rounded = np.rint(stored_idx)
    assert np.abs(stored_idx - rounded).max() < 1e-3  # the same grid, permuted
    values = stored[tuple(rounded.astype(int).T)]
    np.testing.assert_allclose(vol.data.reshape(-1), values, atol=atol)


@pytest.mark.parametrize("codes", ["RAS", "LIP", "PRI"])
def test_oblique_nifti_reads_every_voxel_at_its_world_position(tmp_path, oblique, codes):
    stored, affine = reoriented(*oblique, codes)
    path = save_nifti(stored, affine, tmp_path / f"obl_{codes}.nii.gz")
    vol = read_volume(path)
    img = nib.load(str(path))
    _same_voxels_through_the_files_affine(vol, np.asarray(img.dataobj), img.affine)
    np.testing.assert_allclose(vol.data, world_image(voxel_world(vol.affine, vol.shape)), rtol=1e-4, atol=1e-3)
    w = np.argwhere(vol.data >= 0.9 * vol.data.max())[:, 2].mean()
    assert w < vol.shape[2] / 2  # the left blob is in the low (patient-left) half of W


def _dicom_world_and_values(folder) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) RAS world mm and (N,) values of every pixel of a DICOM series, from each file's own Image Position,
    Image Orientation and Pixel Spacing (pydicom), without SimpleITK."""
    import pydicom

    worlds, values = [], []
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(str(f))
        ipp = np.array(ds.ImagePositionPatient, dtype=np.float64)
        iop = np.array(ds.ImageOrientationPatient, dtype=np.float64)
        row_dir, col_dir = iop[:3], iop[3:]  # along a row (column index grows), along a column (row index grows)
        dr, dc = (float(v) for v in ds.PixelSpacing)  # between rows, between columns
        pixels = ds.pixel_array.astype(np.float64)  # (rows, cols)
        r, c = np.indices(pixels.shape).reshape(2, -1)
        lps = ipp + c[:, None] * dc * row_dir + r[:, None] * dr * col_dir
        worlds.append(lps * np.array([-1.0, -1.0, 1.0]))  # LPS -> RAS
        values.append(pixels.reshape(-1))
    return np.concatenate(worlds), np.concatenate(values)


@pytest.mark.parametrize("codes", ["LPS", "PRI"])
def test_oblique_dicom_series_reads_every_pixel_at_its_world_position(tmp_path, codes):
    data, affine = oblique_grid(shape=(30, 32, 26), spacing=(6.0, 6.0, 7.0))
    stored, stored_affine = reoriented(np.round(data).astype(np.int16), affine, codes)
    folder = write_dicom_series(stored, stored_affine, tmp_path / "dcm", "1.2.826.0.1.3680043.8.498.91")
    vol = read_volume(folder)
    world, values = _dicom_world_and_values(folder)
    inv = np.linalg.inv(vol.affine)
    idx = world @ inv[:3, :3].T + inv[:3, 3]  # where the reader put each pixel
    rounded = np.rint(idx)
    assert np.abs(idx - rounded).max() < 1e-2
    np.testing.assert_allclose(vol.data[tuple(rounded.astype(int).T)], values, atol=1e-3)
    assert len(values) == vol.data.size
    np.testing.assert_allclose(vol.data, np.round(world_image(voxel_world(vol.affine, vol.shape))), atol=1.0)


@pytest.mark.parametrize("codes", ["LIP", "PRI"])
def test_write_nifti_puts_a_map_back_on_an_oblique_scans_own_grid(tmp_path, oblique, codes):
    stored, affine = reoriented(*oblique, codes)
    vol = read_volume(save_nifti(stored, affine, tmp_path / "obl.nii.gz"))
    own = nib.load(str(write_nifti(vol.data, vol.affine, tmp_path / "own.nii.gz", stored_as=vol.orientation)))
    assert own.shape == stored.shape
    np.testing.assert_allclose(own.affine, affine, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(own.dataobj), stored)
    ras = nib.load(str(write_nifti(vol.data, vol.affine, tmp_path / "ras.nii.gz")))
    assert "".join(nib.aff2axcodes(ras.affine)) == "RAS"
    np.testing.assert_allclose(np.asarray(ras.dataobj), world_image(voxel_world(ras.affine, ras.shape)),
                               rtol=1e-4, atol=1e-3)


def test_oblique_scan_preprocesses_with_the_blob_at_its_world_position(tmp_path, oblique):
    path = save_nifti(*reoriented(*oblique, "LIP"), tmp_path / "obl.nii.gz")
    mv = load_for_model(path, PreprocessConfig(size=CFG.size, high=100.0))  # only the peak maps to 1
    x = mv.tensor[0].numpy()
    core = np.argwhere(x >= 0.7)  # the blob's core: the head alone stays below 0.4 of the peak
    weights = x[tuple(core.T)]
    centre = (core * weights[:, None]).sum(axis=0) / weights.sum()
    assert centre[2] < x.shape[2] / 2
    world = mv.affine[:3, :3] @ centre + mv.affine[:3, 3]
    assert np.linalg.norm(world - np.array(BLOB_WORLD)) < 6.0  # the model grid is about 11 mm


def test_reader_messages_name_the_file_and_say_why(tmp_path):
    (tmp_path / "scan.png").write_bytes(b"x")
    (tmp_path / "one.dcm").write_bytes(b"x")
    png, dcm = (re.escape(str(tmp_path / n)) for n in ("scan.png", "one.dcm"))
    with pytest.raises(VolumeError, match=rf"^{png}: unsupported file type \(expected \.nii, \.nii\.gz, \.nrrd, \.mha, "
                                          r"\.mhd or a DICOM folder\)$"):
        read_volume(tmp_path / "scan.png")
    with pytest.raises(VolumeError, match=rf"^{dcm}: is a single DICOM file; pass the folder that holds the whole series$"):
        read_volume(tmp_path / "one.dcm")
    junk = tmp_path / "junk.nii"
    junk.write_bytes(b"this is not a nifti header at all" * 3)
    with pytest.raises(VolumeError, match=r"junk\.nii: cannot be read as NIfTI \(.{8,}\)$") as err:
        read_volume(junk)
    assert "(None)" not in str(err.value)
    with pytest.raises(VolumeError, match=r"^no input volume given$"):
        read_sequences([])


def test_volume_remembers_its_source_and_is_float32(tmp_path):
    data = (np.random.default_rng(7).random((6, 7, 5)) * 1000).astype(np.int16)
    path = save_nifti(data, np.eye(4), tmp_path / "int.nii.gz")
    vol = read_volume(path)
    assert vol.source == str(path) and vol.data.dtype == np.float32
    big = save_nifti((np.random.default_rng(9).random((40, 40, 40)) * 1000).astype(np.int16), np.eye(4),
                     tmp_path / "big.nii.gz")
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(big.read_bytes()[: len(big.read_bytes()) // 2])
    with pytest.raises(VolumeError, match=r"cut\.nii\.gz: is truncated or corrupt \(.{8,}\)$") as err:
        read_volume(cut)
    assert "(None)" not in str(err.value)


def test_shape_limits_of_a_3d_volume(tmp_path):
    rng = np.random.default_rng(8)
    assert read_volume(save_nifti(rng.random((2, 5, 6)).astype(np.float32), np.eye(4), tmp_path / "thin.nii")).shape \
        == (6, 5, 2)  # two voxels along an axis is still a volume
    with pytest.raises(VolumeError, match=r"flat\.nii: is a 2D image \(shape \(8, 8, 1\)\), not a 3D volume"):
        read_volume(save_nifti(rng.random((8, 8, 1)).astype(np.float32), np.eye(4), tmp_path / "flat.nii"))
    series = save_nifti(rng.random((6, 7, 5, 3)).astype(np.float32), np.eye(4), tmp_path / "s.nii")
    assert read_volume(series, volume_index=0).shape == (5, 7, 6)
    with pytest.raises(VolumeError, match=r"s\.nii: has no volume 3 \(0\.\.2\)"):
        read_volume(series, volume_index=3)
    inf = rng.random((6, 7, 5)).astype(np.float32)
    inf[1, 1, 1] = np.inf  # infinite but no NaN: the maximum alone is not finite
    with pytest.raises(VolumeError, match=r"inf\.nii: contains 1 NaN or infinite voxels"):
        read_volume(save_nifti(inf, np.eye(4), tmp_path / "inf.nii"))


def test_a_nifti2_header_too_large_for_64_bit_integers_is_refused(tmp_path):
    img = nib.Nifti2Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    path = tmp_path / "huge2.nii"
    nib.save(img, str(path))
    raw = bytearray(path.read_bytes())
    hdr = nib.Nifti2Header.from_fileobj(__import__("io").BytesIO(bytes(raw)))
    hdr.set_data_shape((2**22, 2**22, 2**22))  # 2^66 voxels: wraps to 0 as a 64-bit integer product
    path.write_bytes(hdr.binaryblock + bytes(raw[len(hdr.binaryblock):]))
    with pytest.raises(VolumeError, match=r"huge2\.nii: is too large \(4194304×4194304×4194304 = .* voxels, limit .*\); "
                                          r"crop or downsample it first$"):
        read_volume(path)


def test_sequences_on_other_grids_are_resampled_and_reader_options_reach_every_file(tmp_path, ras):
    data, affine = ras
    a = save_nifti(data, affine, tmp_path / "a.nii.gz")
    shifted = affine.copy()
    shifted[0, 3] += 0.5  # same shape, half a millimetre away: another grid
    b = save_nifti(world_image(voxel_world(shifted, data.shape)), shifted, tmp_path / "b.nii.gz")
    cropped = save_nifti(data[:, :, :50], affine, tmp_path / "c.nii.gz")  # same affine, fewer voxels
    vol = read_sequences([a, b, cropped])
    np.testing.assert_allclose(vol.data[1], vol.data[0], atol=3.0)  # resampled back onto a's grid
    assert np.abs(vol.data[1] - read_volume(b).data).max() > 0.5  # ... which is not b's own array
    np.testing.assert_array_equal(vol.data[2][:50], vol.data[0][:50])  # the cropped one fills its part
    assert not vol.data[2][50:].any()
    small = np.round(data[::4, ::4, ::4]).astype(np.int16)
    aff = affine.copy()
    aff[:3, :3] *= 4
    write_dicom_series(small, aff, tmp_path / "mixed", "1.2.3.21")
    write_dicom_series(small + 5, aff, tmp_path / "mixed", "1.2.3.22")
    both = read_sequences([tmp_path / "mixed", tmp_path / "mixed"], series_uid="1.2.3.22")
    assert both.data.shape[0] == 2 and both.data.min() >= 5


def test_degenerate_itk_and_dicom_geometry_and_a_corrupt_series_name_their_file(tmp_path, ras):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.random.default_rng(10).random((4, 5, 6)).astype(np.float32))
    img.SetSpacing((1e-5, 1e-5, 1e-5))  # ITK takes it; a 1e-15 mm^3 voxel is no scan
    sitk.WriteImage(img, str(tmp_path / "tiny.mha"))
    with pytest.raises(VolumeError, match=rf"^{re.escape(str(tmp_path / 'tiny.mha'))}: has a voxel size of 1e-05 mm "
                       r"in its header \(expected 0\.001 to 1000 mm\)"):
        read_volume(tmp_path / "tiny.mha")
    data, affine = ras
    small = np.round(data[::8, ::8, ::8]).astype(np.int16)
    tiny = write_dicom_series(small, np.diag([1e-5, 1e-5, 1e-5, 1.0]), tmp_path / "tinydcm", "1.2.3.31")
    with pytest.raises(VolumeError, match=rf"^{re.escape(str(tiny))}: has a voxel size of 1e-05 mm in its header"):
        read_volume(tiny)
    aff = affine.copy()
    aff[:3, :3] *= 8
    broken = write_dicom_series(small, aff, tmp_path / "broken", "1.2.3.32")
    write_dicom_series(small[:-2, :, :1], aff, tmp_path / "broken", "1.2.3.32")  # slice 0 again, 2 columns short
    # the series check (brain3d.headers) names the slice that disagrees before GDCM reads it
    with pytest.raises(VolumeError, match=rf"^{re.escape(str(broken))}: DICOM series 1\.2\.3\.32: slice .*\.dcm differs "
                                          r"from the first slice in orientation, pixel spacing or size") as err:
        read_volume(broken)
    assert "(None)" not in str(err.value)


def test_nifti_bytes_are_gzip_by_default_and_sequences_resample_linearly():
    from brain3d.io import Volume, nifti_bytes, resample_to

    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert nifti_bytes(x, np.eye(4))[:2] == b"\x1f\x8b"
    assert gzip.decompress(nifti_bytes(x, np.eye(4))) == nifti_bytes(x, np.eye(4), gz=False)
    squares = np.broadcast_to((np.arange(8, dtype=np.float32) ** 2)[None, None, :], (3, 3, 8)).copy()
    target = np.eye(4)
    target[2, 3] = 0.5
    vol = Volume(squares, np.eye(4), (1.0, 1.0, 1.0), ("R", "A", "S"), "squares")
    w = np.arange(6)
    np.testing.assert_allclose(resample_to(vol, target, (3, 3, 6))[1, 1], (w**2 + (w + 1) ** 2) / 2, rtol=1e-6)
