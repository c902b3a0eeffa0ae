import json
from collections import Counter

import pytest

from brain3d.data.manifest import Record, Truth, assign_splits, read_manifest, write_manifest
from brain3d.errors import ManifestError


def _records(n_left=40, n_right=40, n_bi=14, n_healthy=30):
    recs = []
    for side, n in (("left", n_left), ("right", n_right), ("bilateral", n_bi)):
        recs += [Record(id=f"{side}{i:03d}", images={"flair": f"v/{side}{i}.nii.gz"}, report="r",
                        truth=Truth(side=side)) for i in range(n)]
    recs += [Record(id=f"h{i:03d}", images={"flair": f"v/h{i}.nii.gz"}, healthy=True, truth=Truth())
             for i in range(n_healthy)]
    return recs


def test_split_is_seeded_stratified_and_complete():
    recs = _records()
    a, b = assign_splits(recs, seed=42), assign_splits(list(reversed(recs)), seed=42)
    assert {r.id: r.split for r in a} == {r.id: r.split for r in b}  # order-independent, seeded
    assert {r.id: r.split for r in a} != {r.id: r.split for r in assign_splits(recs, seed=7)}
    for stratum in ("left", "right", "bilateral", "healthy"):
        c = Counter(r.split for r in a if r.stratum == stratum)
        n = sum(c.values())
        assert abs(c["test"] - 0.2 * n) <= 1 and abs(c["val"] - 0.1 * n) <= 1
    assert len(a) == len(recs)


def test_round_trip_resolves_relative_paths(tmp_path):
    recs = assign_splits(_records(2, 2, 1, 2))
    path = write_manifest([r.model_copy(update={"images": {"flair": str(tmp_path / r.images["flair"])}})
                           for r in recs], tmp_path / "manifest.jsonl")
    stored = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert not stored["images"]["flair"].startswith("/")  # stored relative to the manifest
    back = read_manifest(path)
    assert back[0].images["flair"] == str(tmp_path / recs[0].images["flair"])
    assert [r.id for r in read_manifest(path, split="test")] == [r.id for r in recs if r.split == "test"]


def test_bad_manifests_name_file_and_line(tmp_path):
    with pytest.raises(ManifestError, match="manifest file not found"):
        read_manifest(tmp_path / "none.jsonl")
    p = tmp_path / "m.jsonl"
    p.write_text('{"id": "a", "images": {"flair": "a.nii"}}\n{"id": "b"}\n')
    with pytest.raises(ManifestError, match=r"m\.jsonl: line 2 is not a valid record"):
        read_manifest(p)
    p.write_text('{"id": "a", "images": {"flair": "a.nii"}}\n{"id": "a", "images": {"flair": "b.nii"}}\n')
    with pytest.raises(ManifestError, match="line 2 repeats subject id 'a'"):
        read_manifest(p)
    p.write_text('{"id": "a", "images": {"flair": "a.nii"}}\nnot json\n')
    with pytest.raises(ManifestError, match="line 2 is not a valid record"):
        read_manifest(p)
    p.write_text('{"id": "a", "split": "train", "images": {"flair": "a.nii"}}\n')
    with pytest.raises(ManifestError, match="no subject in split 'test'"):
        read_manifest(p, split="test")


def test_missing_sequence_is_named():
    r = Record(id="s1", images={"flair": "f.nii"})
    with pytest.raises(ManifestError, match="subject s1 has no sequence 't1'"):
        r.image_paths(["flair", "t1"])
