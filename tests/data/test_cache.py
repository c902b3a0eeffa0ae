import pytest
import torch

from brain3d.data.cache import FeatureCache, FeatureSource, feature_key, file_digest, module_digest, tensors_digest, volume_digest
from brain3d.data.manifest import Record
from brain3d.errors import CheckpointError
from brain3d.preprocess import PreprocessConfig


def test_volume_digest_follows_content_not_name(tmp_path):
    a, b, c = tmp_path / "a.nii", tmp_path / "b.nii", tmp_path / "c.nii"
    a.write_bytes(b"volume-1")
    b.write_bytes(b"volume-1")
    c.write_bytes(b"volume-2")
    assert file_digest(a) == file_digest(b) != file_digest(c)
    assert volume_digest([a, c]) != volume_digest([c, a])  # sequence order matters
    folder = tmp_path / "dicom"
    folder.mkdir()
    (folder / "1.dcm").write_bytes(b"x")
    d1 = file_digest(folder)
    (folder / "2.dcm").write_bytes(b"y")
    assert file_digest(folder) != d1


def test_feature_key_covers_every_input():
    pp = PreprocessConfig(size=(16, 32, 32))
    base = dict(volume="v", encoder="e", preprocess=pp, sequences=["flair"], mirrored=False)
    k = feature_key(**base)
    assert k == feature_key(**base)
    variants = [
        dict(volume="v2"), dict(encoder="e2"), dict(preprocess=PreprocessConfig(size=(16, 32, 33))),
        dict(preprocess=PreprocessConfig(size=(16, 32, 32), high=98.0)), dict(sequences=["t1"]),
        dict(mirrored=True), dict(precision="bfloat16"),
    ]
    keys = {feature_key(**{**base, **v}) for v in variants}
    assert k not in keys and len(keys) == len(variants)


def test_module_digest_changes_with_any_weight():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    d = module_digest(m)
    assert d == module_digest(m)
    with torch.no_grad():
        m[1].bias[0] += 1e-6
    assert module_digest(m) != d
    assert tensors_digest({"x": torch.zeros(2, dtype=torch.bfloat16)}) != tensors_digest({"x": torch.zeros(2)})
    assert tensors_digest({"s": torch.tensor(1.0)})  # 0-d tensors hash too


def test_cache_roundtrip_is_atomic_and_reports_bad_entries(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    x = torch.randn(7, 5)
    assert cache.get("ab" * 20) is None and ("ab" * 20) not in cache
    cache.put("ab" * 20, x, {"id": "s1"})
    assert ("ab" * 20) in cache
    assert torch.equal(cache.get("ab" * 20), x)
    assert not [p for p in (tmp_path / "cache").rglob("*.tmp")]
    cache.path("cd" * 20).parent.mkdir(parents=True, exist_ok=True)
    cache.path("cd" * 20).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot be read"):
        cache.get("cd" * 20)


def test_feature_source_reads_the_variant_asked_for(tmp_path):
    cache = FeatureCache(tmp_path)
    orig, mirr = torch.zeros(3, 2), torch.ones(3, 2)
    cache.put("k" * 40, orig)
    cache.put("m" * 40, mirr)
    rec = Record(id="s1", images={"flair": "x.nii"})
    src = FeatureSource(cache, {("s1", False): "k" * 40, ("s1", True): "m" * 40})
    assert torch.equal(src(rec, False), orig) and torch.equal(src(rec, True), mirr)
    with pytest.raises(CheckpointError, match="no cached features"):
        FeatureSource(cache, {})(rec, False)
