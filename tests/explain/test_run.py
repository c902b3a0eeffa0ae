"""End to end on one scan: a planted model whose every target depends only on a known region must put its top
supervoxel there, and the NIfTI written on the scan's own grid (stored LPS or RAS) must light the same world
coordinates; batched and one-at-a-time perturbation give the same weights; bad input fails alone."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch

from brain3d.explain import ExplainConfig, explain_scan, explain_scans
from brain3d.orientation import index_to_world
from brain3d.reporting.inputs import ScanInput
from tests.volumes import BLOB_WORLD, ras_grid, reoriented, save_nifti

REPORT = "A left frontal lesion with surrounding edema and necrosis."
RADIUS_MM = 14.0


class PlantedLM(torch.nn.Module):
    """logits = ±4·b on chosen tokens, where b = mean of the vision slots: every report token (and so every target)
    gains with b, the mirror word 'right' loses."""

    def __init__(self, embedding, vocab: int, start: int, k: int, boost: list[int], against: list[int]) -> None:
        super().__init__()
        self.embedding, self.vocab, self.start, self.k = embedding, vocab, start, k
        self.sign = torch.zeros(vocab)
        self.sign[boost] = 4.0
        self.sign[against] = -4.0

    def get_input_embeddings(self):
        return self.embedding

    def forward(self, inputs_embeds, attention_mask=None, use_cache=False, logits_to_keep=0):
        b = inputs_embeds[:, self.start:self.start + self.k].float().mean(dim=(1, 2))  # (B,)
        logits = b[:, None, None] * self.sign.view(1, 1, -1)  # (B, 1, V)
        logits = logits.expand(inputs_embeds.shape[0], inputs_embeds.shape[1], self.vocab)  # (B, T, V)
        return SimpleNamespace(logits=logits[:, logits_to_keep] if torch.is_tensor(logits_to_keep) else logits)


def planted(model, region_weight: torch.Tensor):
    """A copy of `model` whose vision read-out is the mean intensity inside the region (a (D, H, W) 0/1 map)."""
    m = copy.copy(model)  # shares the real tokenizer, prompt layout and teacher-forcing code
    tok, layout = model.tokenizer, model.layout
    boost = sorted(set(tok(REPORT, add_special_tokens=False)["input_ids"]) | {layout.end})
    against = [i for i in tok(" right", add_special_tokens=False)["input_ids"] if i not in boost]
    k, dlm = model.config.num_tokens, model.lm.get_input_embeddings().embedding_dim

    def encode_volume(x):  # (B, C, D, H, W) -> (B, K, dlm): the region's mean, everywhere
        mean = (x[:, 0] * region_weight).flatten(1).sum(1) / region_weight.sum()
        return mean.view(-1, 1, 1).expand(-1, k, dlm)

    object.__setattr__(m, "encode_volume", encode_volume)
    object.__setattr__(m, "visual_tokens", lambda f: f)
    m._modules = dict(model._modules)
    m.lm = PlantedLM(model.lm.get_input_embeddings(), model.lm.get_input_embeddings().num_embeddings,
                     len(layout.before), k, boost, against)
    return m


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """The same physical head (bright blob in the LEFT hemisphere) stored RAS and LPS."""
    folder = tmp_path_factory.mktemp("scans")
    data, affine = ras_grid(shape=(48, 56, 40), spacing=(3.0, 3.0, 3.5))
    return {codes: save_nifti(*reoriented(data, affine, codes), folder / f"{codes}.nii.gz") for codes in ("RAS", "LPS")}


def _region(model, path) -> torch.Tensor:
    """(D, H, W) 0/1 map of the model-grid voxels within RADIUS_MM of the blob centre."""
    from brain3d.eval.evaluate import preprocess_for
    from brain3d.preprocess import load_for_model

    mv = load_for_model(path, preprocess_for(model))
    idx = np.indices(mv.tensor.shape[1:]).reshape(3, -1).T
    dist = np.linalg.norm(index_to_world(mv.affine, idx) - np.array(BLOB_WORLD), axis=1)
    return torch.from_numpy((dist < RADIUS_MM).reshape(mv.tensor.shape[1:]).astype(np.float32))


@pytest.mark.parametrize("target", ["report", "side", "lobes", "findings", "surrounding edema"])
def test_planted_region_is_the_top_supervoxel_and_lands_on_the_same_world_coordinates(tiny_brain3d, scans, tmp_path,
                                                                                    target):
    region = _region(tiny_brain3d, scans["RAS"])
    model = planted(tiny_brain3d, region)
    cfg = ExplainConfig(target=target, samples=40, segments=12, batch=20, png=False)
    maps = {}
    for codes, path in scans.items():
        exp = explain_scan(model, ScanInput(codes, [str(path)], str(path)), cfg, out=tmp_path, report=REPORT)
        assert exp.r2 > 0.9  # the planted score is (nearly) linear in the region's supervoxels
        # expected top: the supervoxel holding most of the region's intensity above the fill value
        volume_lift = np.zeros(len(exp.weights) + 1)
        from brain3d.eval.evaluate import preprocess_for
        from brain3d.preprocess import load_for_model

        t = load_for_model(path, preprocess_for(model)).tensor[0].numpy()
        fill = exp.settings["fill_values"][0]
        np.add.at(volume_lift, exp.labels.ravel(), (region.numpy() * (t - fill)).ravel())
        volume_lift[0] = -np.inf
        assert exp.top[0]["label"] == int(np.argmax(volume_lift))
        assert exp.top[0]["side"] == "left"
        others = [abs(w) for s, w in enumerate(exp.weights, 1) if volume_lift[s] == 0]
        assert max(others, default=0.0) < 0.2 * exp.top[0]["weight"]
        img = nib.load(str(exp.files["nifti"]))
        src = nib.load(str(path))
        assert img.shape == src.shape and np.allclose(img.affine, src.affine)  # the scan's own grid and affine
        assert "".join(nib.aff2axcodes(img.affine)) == codes
        maps[codes] = img
        # the top supervoxel is lit at the blob's world position, read through the file's own affine
        ijk = np.rint(np.linalg.inv(img.affine) @ [*BLOB_WORLD, 1.0])[:3].astype(int)
        assert img.get_fdata()[tuple(ijk)] == pytest.approx(exp.top[0]["weight"], rel=1e-5)
    a, b = (nib.as_closest_canonical(maps[c]) for c in ("RAS", "LPS"))
    np.testing.assert_array_equal(a.get_fdata(), b.get_fdata())
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-6)


def test_an_oblique_scans_map_lands_on_its_own_grid_at_the_blobs_world_position(tiny_brain3d, tmp_path):
    """An acquisition 35 and 40 degrees off the patient's axes, stored LIP: the top supervoxel is the blob's, on the
    left; the map written on the scan's own grid lights the blob's world position read through the file's affine;
    every supervoxel well off the midline is called by the side of its world x."""
    from tests.volumes import oblique_grid

    path = save_nifti(*reoriented(*oblique_grid(shape=(48, 52, 44), spacing=(3.5, 3.5, 4.0)), "LIP"),
                      tmp_path / "obl.nii.gz")
    model = planted(tiny_brain3d, _region(tiny_brain3d, path))
    cfg = ExplainConfig(target="side", samples=40, segments=12, batch=20, png=False)
    exp = explain_scan(model, ScanInput("obl", [str(path)], str(path)), cfg, out=tmp_path / "out", report=REPORT)
    assert exp.top[0]["side"] == "left" and exp.top[0]["centroid_mm"][0] < 0
    src, img = nib.load(str(path)), nib.load(str(exp.files["nifti"]))
    assert img.shape == src.shape and np.allclose(img.affine, src.affine, atol=1e-6)
    assert "".join(nib.aff2axcodes(img.affine)) == "LIP"
    ijk = np.rint(np.linalg.inv(img.affine) @ [*BLOB_WORLD, 1.0])[:3].astype(int)
    assert img.get_fdata()[tuple(ijk)] == pytest.approx(exp.top[0]["weight"], rel=1e-5)
    lateral = [r for r in exp.supervoxels if abs(r["centroid_mm"][0]) > 15.0]
    assert lateral and all(r["side"] == ("left" if r["centroid_mm"][0] < 0 else "right") for r in lateral)


def test_batched_and_one_at_a_time_give_the_same_weights(tiny_brain3d, scans):
    scan = ScanInput("s", [str(scans["LPS"])], str(scans["LPS"]))
    one = explain_scan(tiny_brain3d, scan, ExplainConfig(target="report", samples=12, batch=1), report=REPORT)
    many = explain_scan(tiny_brain3d, scan, ExplainConfig(target="report", samples=12, batch=12), report=REPORT)
    np.testing.assert_allclose(many.weights, one.weights, rtol=1e-5, atol=1e-7)
    assert np.abs(many.weights).max() > 0


def test_bad_scans_fail_alone_and_leave_nothing_half_written(tiny_brain3d, scans, tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "missing.nii.gz"
    items = [ScanInput("missing", [str(missing)], str(missing)),
             ScanInput("good", [str(scans["RAS"])], str(scans["RAS"])),
             ScanInput("noside", [str(scans["LPS"])], str(scans["LPS"]))]
    cfg = ExplainConfig(target="side", samples=8, segments=6)
    reports = {"good": REPORT, "noside": "No abnormality.", "missing": REPORT}
    results = list(explain_scans(tiny_brain3d, items, cfg, out=out, reports=reports))
    assert [r.id for r in results] == ["missing", "good", "noside"]
    assert results[0].error == f"{missing}: file not found"
    assert "names no side" in results[2].error and str(scans["LPS"]) in results[2].error
    assert results[1].error is None
    assert sorted(p.name for p in out.iterdir()) == ["explanations.jsonl", "good_lime.json", "good_lime.nii.gz",
                                                     "good_lime.png"]
    rows = [json.loads(line) for line in (out / "explanations.jsonl").read_text().splitlines()]
    assert [(r["id"], r["error"] is None) for r in rows] == [("missing", False), ("good", True), ("noside", False)]
    record = json.loads((out / "good_lime.json").read_text())
    assert record["settings"]["samples"] == 8 and "lime.lime_base.LimeBase" in record["settings"]["method"]
    assert len(record["supervoxels"]) == record["settings"]["supervoxels"]
    assert {"label", "weight", "voxels", "centroid_mm", "side", "lobe"} <= set(record["supervoxels"][0])
    assert record["words"] == ["left"] and record["fit"]["r2"] is not None


def test_a_dicom_series_gets_its_map_on_its_own_grid_and_seeds_reproduce(tiny_brain3d, tmp_path):
    from brain3d.io import read_volume
    from brain3d.reporting.inputs import discover
    from tests.volumes import oblique_grid, write_dicom_series

    data, affine = oblique_grid(shape=(24, 28, 20), spacing=(6.0, 6.0, 7.0))  # 35 and 40 degrees off the axes
    stored, stored_affine = reoriented(np.round(data).astype(np.int16), affine, "LPS")
    folder = write_dicom_series(stored, stored_affine, tmp_path / "dcm", "1.2.826.0.1.3680043.8.498.15")
    (scan,) = discover([str(folder)])
    cfg = ExplainConfig(target="report", samples=8, segments=6)
    exp = explain_scan(tiny_brain3d, scan, cfg, out=tmp_path / "out", report=REPORT)
    img = nib.load(str(exp.files["nifti"]))
    assert img.shape == stored.shape and np.allclose(img.affine, stored_affine, atol=1e-4)  # the series' own grid
    lit = np.argwhere(np.asarray(img.dataobj) != 0)  # the map covers the head, in the series' own world coordinates
    world = lit @ img.affine[:3, :3].T + img.affine[:3, 3]
    assert np.abs(world.mean(axis=0)).max() < 12.0  # the head is centred on the world origin
    back = read_volume(exp.files["nifti"])  # read back into model axes: the model-grid map, resampled
    assert back.shape == read_volume(folder).shape and set(np.unique(back.data)) <= {0.0, *exp.weights.astype(np.float32)}
    again = explain_scan(tiny_brain3d, scan, cfg, report=REPORT)
    np.testing.assert_array_equal(again.weights, exp.weights)  # same seed, same samples, same weights
    other = explain_scan(tiny_brain3d, scan, ExplainConfig(target="report", samples=8, segments=6, seed=7),
                         report=REPORT)
    assert not np.array_equal(other.weights, exp.weights)
