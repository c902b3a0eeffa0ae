"""`brain3d data merge`: the paper's 70/10/20 split by class and side, TextBraTS' own split, duplicates refused."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from brain3d.data.manifest import Record, Truth, read_manifest, write_manifest
from tests.data.test_brats_adapter import run_cli

SIDES = ["left"] * 40 + ["right"] * 40 + ["bilateral"] * 20


def brats_records(n: int = 100) -> list[Record]:
    return [Record(id=f"BraTS20_Training_{i + 1:03d}", images={"flair": f"/d/{i}.nii.gz"}, report="r",
                   truth=Truth(side=SIDES[i % len(SIDES)]), source="brats") for i in range(n)]


def healthy_records(n: int = 30) -> list[Record]:
    return [Record(id=f"sub-{i:06d}", images={"flair": f"/h/{i}.nii.gz"}, report="n", healthy=True, source="healthy")
            for i in range(n)]


@pytest.fixture()
def manifests(tmp_path):
    a = write_manifest(brats_records(), tmp_path / "brats.jsonl")
    b = write_manifest(healthy_records(), tmp_path / "healthy.jsonl")
    return tmp_path, a, b


def test_paper_split_is_70_10_20_per_class_and_side(manifests):
    tmp, a, b = manifests
    out = tmp / "all.jsonl"
    rc, stdout, err = run_cli(["data", "merge", str(a), str(b), "--split", "paper", "--seed", "42", "--out", str(out)])
    assert rc == 0, err
    recs = read_manifest(out)
    assert len(recs) == 130 and len({r.id for r in recs}) == 130
    for stratum, n in (("left", 40), ("right", 40), ("bilateral", 20), ("healthy", 30)):
        c = Counter(r.split for r in recs if r.stratum == stratum)
        assert (c["train"], c["val"], c["test"]) == (round(0.7 * n), round(0.1 * n), round(0.2 * n)), stratum
    assert "train 91, val 13, test 26" in stdout
    again = tmp / "again.jsonl"
    run_cli(["data", "merge", str(a), str(b), "--seed", "42", "--out", str(again)])
    assert out.read_text() == again.read_text()
    other = tmp / "other.jsonl"
    run_cli(["data", "merge", str(a), str(b), "--seed", "7", "--out", str(other)])
    assert out.read_text() != other.read_text()


def textbrats_files(folder, test_ids, train_ids):
    folder.mkdir(parents=True, exist_ok=True)

    def entry(sid):
        return {"fold": 0, "image": [f"{sid}/{sid}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")],
                "label": f"{sid}/{sid}_seg.nii.gz", "text_feature": f"{sid}/{sid}_flair_text.npy"}

    for name, ids in (("Test.json", test_ids), ("Train.json", train_ids)):
        (folder / name).write_text(json.dumps({"training": [entry(s) for s in ids]}, indent=4), encoding="utf-8")


def test_textbrats_split_keeps_their_test_set(manifests):
    tmp, a, b = manifests
    ids = [r.id for r in brats_records()]
    test_ids, train_ids = ids[::4], [i for i in ids if i not in ids[::4]]
    textbrats_files(tmp / "TextBraTS", test_ids, train_ids)
    out = tmp / "tb.jsonl"
    rc, _, err = run_cli(["data", "merge", str(a), str(b), "--split", "textbrats", "--textbrats",
                          str(tmp / "TextBraTS"), "--out", str(out)])
    assert rc == 0, err
    recs = {r.id: r for r in read_manifest(out)}
    assert {i for i, r in recs.items() if r.split == "test" and r.source == "brats"} == set(test_ids)
    val = [i for i, r in recs.items() if r.split == "val" and r.source == "brats"]
    assert set(val) <= set(train_ids) and abs(len(val) - len(train_ids) / 8) <= 2
    healthy = Counter(r.split for r in recs.values() if r.healthy)
    assert (healthy["train"], healthy["val"], healthy["test"]) == (21, 3, 6)


def test_textbrats_split_refuses_unknown_subjects(manifests):
    tmp, a, b = manifests
    ids = [r.id for r in brats_records()]
    textbrats_files(tmp / "TextBraTS", ids[:10], ids[10:50])
    out = tmp / "tb.jsonl"
    rc, _, err = run_cli(["data", "merge", str(a), "--split", "textbrats", "--textbrats", str(tmp / "TextBraTS"),
                          "--out", str(out)])
    assert rc == 2 and "BraTS20_Training_051 is in neither Train.json nor Test.json (50 such subjects)" in err
    assert not out.exists()


def test_duplicate_ids_across_manifests(manifests):
    tmp, a, _ = manifests
    out = tmp / "dup.jsonl"
    rc, _, err = run_cli(["data", "merge", str(a), str(a), "--out", str(out)])
    assert rc == 2 and "duplicate subject id 'BraTS20_Training_001'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
