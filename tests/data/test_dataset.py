import numpy as np
import pytest
import torch

from brain3d.data.dataset import FlipPolicy, ReportDataset, collate, epoch_batches, mirror_truth, swap_sides
from brain3d.data.manifest import Record, Truth


@pytest.mark.parametrize("text, expected", [
    ("A lesion in the left frontal lobe.", "A lesion in the right frontal lobe."),
    ("Left parietal mass; right ventricle compressed.", "Right parietal mass; left ventricle compressed."),
    ("LEFT and Right", "RIGHT and Left"),
    ("left-sided edema, shift rightward", "right-sided edema, shift leftward"),
    ("the leftmost and rightwards parts", "the rightmost and leftwards parts"),
    ("bilateral frontal lobes", "bilateral frontal lobes"),
    ("bright signal, leftover, cleft", "bright signal, leftover, cleft"),
    ("", ""),
])
def test_swap_sides(text, expected):
    assert swap_sides(text) == expected


def test_swap_sides_is_an_involution_on_reports():
    text = "There is a tumor involving the left temporal lobe; compression on the left side. Right is normal."
    assert swap_sides(swap_sides(text)) == text


def test_mirror_truth():
    t = Truth(side="left", lobes=["frontal"], findings={"edema": True})
    assert mirror_truth(t).side == "right" and mirror_truth(t).lobes == ["frontal"]
    assert mirror_truth(Truth(side="bilateral")).side == "bilateral"
    assert mirror_truth(None) is None


def test_flip_policy_is_stable_and_near_its_probability():
    pol = FlipPolicy(p=0.5, seed=3)
    ids = [f"s{i}" for i in range(400)]
    first = [pol.mirrored(i, 0) for i in ids]
    assert first == [FlipPolicy(p=0.5, seed=3).mirrored(i, 0) for i in ids]  # same in a fresh object
    assert 0.4 < np.mean(first) < 0.6
    assert first != [pol.mirrored(i, 1) for i in ids]  # another epoch mirrors other subjects
    assert not any(FlipPolicy(p=0.0).mirrored(i, 0) for i in ids)
    assert all(FlipPolicy(p=1.0).mirrored(i, 0) for i in ids)


def _records(n):
    return [Record(id=f"s{i}", split="train", images={"flair": f"/none/{i}.nii"},
                   report=f"Lesion {i} in the left lobe.") for i in range(n)]


def test_dataset_mirrors_volume_and_report_together():
    recs = _records(8)
    base = {r.id: torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4) + int(r.id[1:]) for r in recs}

    def source(rec, mirrored):
        x = base[rec.id]
        return torch.flip(x, dims=(-1,)) if mirrored else x

    ds = ReportDataset(recs, source, FlipPolicy(p=0.5, seed=0))
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        seen.add(item["mirrored"])
        if item["mirrored"]:
            assert "right lobe" in item["report"]
            assert torch.equal(item["inputs"], torch.flip(base[item["id"]], dims=(-1,)))
        else:
            assert "left lobe" in item["report"]
            assert torch.equal(item["inputs"], base[item["id"]])
    assert seen == {True, False}
    batch = collate([ds[0], ds[1]])
    assert batch["inputs"].shape == (2, 1, 2, 3, 4) and batch["id"] == ["s0", "s1"]


def test_epoch_batches_shard_evenly_and_cover_the_epoch():
    n, b = 11, 3
    single = [i for batch in epoch_batches(n, b, seed=1, epoch=2) for i in batch]
    assert sorted(single) == list(range(n))
    shards = [epoch_batches(n, b, seed=1, epoch=2, rank=r, world_size=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1])  # same number of steps in every process (DDP)
    union = {i for s in shards for batch in s for i in batch}
    assert union == set(range(n))
    assert epoch_batches(n, b, seed=1, epoch=2) == epoch_batches(n, b, seed=1, epoch=2)
    assert epoch_batches(n, b, seed=1, epoch=3) != epoch_batches(n, b, seed=1, epoch=2)


def test_epoch_batches_last_small_batch_joins_previous():
    batches = epoch_batches(7, 3, seed=0, epoch=0, min_last=2)
    assert [len(x) for x in batches] == [3, 4]
    assert [len(x) for x in epoch_batches(7, 3, seed=0, epoch=0, drop_last=True)] == [3, 3]
    assert epoch_batches(0, 3, seed=0, epoch=0) == []


def test_volume_source_mirrors_the_patients_left_and_right(tmp_path):
    """An oblique scan with its blob on the patient's left (world x < 0): the source's mirror puts it in the right
    half of W and moves it along no other axis."""
    from brain3d.data.dataset import VolumeSource
    from brain3d.preprocess import PreprocessConfig
    from tests.volumes import oblique_grid, reoriented, save_nifti

    path = save_nifti(*reoriented(*oblique_grid(shape=(30, 32, 26), spacing=(6.0, 6.0, 7.0)), "PRI"),
                      tmp_path / "obl.nii.gz")
    rec = Record(id="s", split="train", images={"flair": str(path)}, report="A left lesion.")
    source = VolumeSource(PreprocessConfig(size=(16, 32, 32), high=100.0), ["flair"])
    plain, mirrored = source(rec, False), source(rec, True)
    w = plain.shape[-1]
    core, mirrored_core = (np.argwhere(v[0].numpy() >= 0.7).mean(axis=0) for v in (plain, mirrored))
    assert core[2] < w / 2 < mirrored_core[2]
    np.testing.assert_allclose(mirrored_core, [core[0], core[1], w - 1 - core[2]], atol=1e-6)
    torch.testing.assert_close(mirrored, plain.flip(-1))


def test_volume_source_labels_land_on_the_scans_blob_and_mirror_with_it(tmp_path):
    """A lesion mask drawn in world coordinates on a grid of its own (axis-aligned, 4 mm) for an oblique scan stored
    LIP: on the model grid it covers the scan's blob (found by intensity, no affine involved), in the patient's-left
    half of W, and the mirrored labels follow the mirrored scan."""
    from brain3d.anatomy.rules import UNKNOWN_LABEL
    from brain3d.data.dataset import VolumeSource
    from brain3d.preprocess import PreprocessConfig
    from tests.volumes import BLOB_WORLD, oblique_grid, ras_grid, reoriented, save_nifti, voxel_world

    data, affine = oblique_grid(shape=(30, 32, 26), spacing=(6.0, 6.0, 7.0))
    scan = save_nifti(*reoriented(data, affine, "LIP"), tmp_path / "obl.nii.gz")
    _, mask_affine = ras_grid(shape=(44, 50, 40), spacing=(4.0, 4.0, 4.0))
    near = np.linalg.norm(voxel_world(mask_affine, (44, 50, 40)) - np.array(BLOB_WORLD), axis=-1) < 12.0
    seg = save_nifti(*reoriented((2.0 * near).astype(np.float32), mask_affine, "PRS"), tmp_path / "seg.nii.gz")
    rec = Record(id="s", split="train", images={"flair": str(scan)}, mask=str(seg), report="A left lesion.",
                 truth=Truth(side="left"))
    source = VolumeSource(PreprocessConfig(size=(16, 32, 32), high=100.0), ["flair"])
    for mirrored in (False, True):
        labels = source.labels(rec, mirrored)
        assert labels.shape == (16, 32, 32) and set(np.unique(labels.numpy())) == {0, 2}
        lesion = np.argwhere(labels.numpy() == 2).mean(axis=0)
        blob = np.argwhere(source(rec, mirrored)[0].numpy() >= 0.7).mean(axis=0)
        assert np.abs(lesion - blob).max() < 1.5  # within about a model voxel
        assert (lesion[2] < 16) != mirrored  # the patient's left half of W, or the right one when mirrored
    assert torch.equal(source.labels(rec, True), source.labels(rec, False).flip(-1))
    healthy = Record(id="h", split="train", images={"flair": str(scan)}, report="Normal.", healthy=True)
    unknown = Record(id="u", split="train", images={"flair": str(scan)}, report="A lesion.", truth=Truth(side="left"))
    assert not source.labels(healthy, False).any()
    assert (source.labels(unknown, True) == UNKNOWN_LABEL).all()


def test_flip_policy_decisions_are_pinned_across_versions():
    """Which subjects an epoch mirrors is part of a run's identity (a resumed run, or one rerun with a later version,
    must mirror the same ones): the decisions of seed 3 are written out, and the seed and p both matter."""
    def decisions(p: float, seed: int) -> str:
        return "".join("1" if FlipPolicy(p=p, seed=seed).mirrored(f"s{i}", 0) else "0" for i in range(24))

    assert decisions(0.5, 3) == "101000011111101011110010"
    assert decisions(0.5, 4) == "111100010100000111010101"
    assert decisions(0.25, 3) == "000000010010001011010010"  # a subset of p = 0.5's: one hash, two thresholds
