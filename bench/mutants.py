"""Curated laterality mutants, each run against the ordinary test suite: every one must be killed.

A mutant is a small text patch that flips the patient somewhere (mirrors the wrong axis, swaps left and right in a
side helper, drops or transposes the orientation step, pairs the wrong cells in the mirror compressor, swaps the
hemispheres of a truth rule...). For each mutant the tree is copied to a temporary folder (the working tree is
never touched), the patch applied to the copy, and the test files that cover that code run there with
`pytest -x`; the first failing test is the one that killed it. A mutant that no test kills is a hole in the suite.

    python bench/mutants.py                # all mutants; prints the table, exits 1 if any survived
    python bench/mutants.py --list         # names only
    python bench/mutants.py --only flip-ap mirror-pool-off-by-one
    python bench/mutants.py --markdown out.md
    python bench/mutants.py --mutmut       # the broader run: mutmut over orientation, io and the side helpers;
                                           # writes bench/mutation.json (bench/run.py puts it in results.md)

The patches are exact text: when the code they patch changes, the mutant is reported as stale (and
tests/bench/test_mutants.py fails), so the list cannot silently stop testing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("brain3d", "tests", "docs", "pyproject.toml")


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository root
    patches: tuple[tuple[str, str], ...]  # (exact old text, new text), each old text found exactly once
    tests: tuple[str, ...]  # the test files that cover it, fastest killer first
    what: str


ORIENT_TESTS = ("tests/test_orientation.py", "tests/test_io.py")
MIRROR_TESTS = ("tests/test_orientation.py", "tests/train/test_diagnostics.py", "tests/data/test_dataset.py",
                "tests/reporting/test_laterality.py", "tests/eval/test_laterality.py")

MUTANTS: tuple[Mutant, ...] = (
    # ---- the mirror
    Mutant("flip-ap", "brain3d/orientation.py",
           (("torch.flip(x, dims=(-1,))", "torch.flip(x, dims=(-2,))"), ("np.flip(x, axis=-1)", "np.flip(x, axis=-2)")),
           MIRROR_TESTS, "flip_left_right mirrors anterior-posterior (H) instead of left-right (W)"),
    Mutant("flip-si", "brain3d/orientation.py",
           (("torch.flip(x, dims=(-1,))", "torch.flip(x, dims=(-3,))"), ("np.flip(x, axis=-1)", "np.flip(x, axis=-3)")),
           MIRROR_TESTS, "flip_left_right mirrors superior-inferior (D)"),
    Mutant("flip-none", "brain3d/orientation.py",
           (("return torch.flip(x, dims=(-1,))", "return x"),
            ("return np.ascontiguousarray(np.flip(x, axis=-1))", "return np.ascontiguousarray(x)")),
           MIRROR_TESTS, "flip_left_right returns the volume unmirrored"),
    Mutant("mirrored-side-same", "brain3d/eval/diagnostics.py",
           (('_OPPOSITE = {"left": "right", "right": "left",', '_OPPOSITE = {"left": "left", "right": "right",'),),
           ("tests/test_orientation.py", "tests/eval/test_diagnostics.py", "tests/reporting/test_laterality.py"),
           "mirrored_side (and the mirror test) expects the same side for a mirrored scan"),
    Mutant("mirror-generation-unflipped", "brain3d/eval/evaluate.py",
           (("model.generate(volumes=flip_left_right(volumes),", "model.generate(volumes=volumes,"),),
           ("tests/reporting/test_laterality.py", "tests/eval/test_laterality.py"),
           "report --mirror-check / evaluate --mirror generate the 'mirror' from the unmirrored scan"),
    Mutant("consistency-against-same-side", "brain3d/reporting/runner.py",
           (("rec.laterality_consistent = m_side == mirrored_side(rec.findings.side)",
             "rec.laterality_consistent = m_side == rec.findings.side"),),
           ("tests/reporting/test_laterality.py",), "the mirror check calls a side that did not flip consistent"),
    # ---- side words and side helpers
    Mutant("side-words-swapped", "brain3d/vocabulary/terms.py",
           (('"left": ("left",), "right": ("right",),', '"left": ("right",), "right": ("left",),'),),
           ("tests/vocabulary/test_terms.py",), "the extractor reads 'left' as right and 'right' as left"),
    Mutant("swap-sides-identity", "brain3d/data/dataset.py",
           (('_OTHER = {"left": "right", "right": "left"}', '_OTHER = {"left": "left", "right": "right"}'),),
           ("tests/data/test_dataset.py",), "augmentation mirrors the volume but keeps the report's side words"),
    Mutant("mirror-truth-kept", "brain3d/data/dataset.py",
           (('return truth.model_copy(update={"side": _OTHER[truth.side]})', "return truth"),),
           ("tests/data/test_dataset.py",), "the truth of a mirrored volume keeps its side"),
    Mutant("volume-source-unmirrored", "brain3d/data/dataset.py",
           (("return flip_left_right(x) if mirrored else x", "return x"),),
           ("tests/data/test_dataset.py",), "the training source ignores the mirror flag (reports swapped, volume not)"),
    Mutant("labels-unmirrored", "brain3d/data/dataset.py",
           (("return flip_left_right(y) if mirrored else y", "return y"),),
           ("tests/data/test_dataset.py",), "a mirrored scan keeps its unmirrored lesion mask (the region loss trains the "
                                             "other side)"),
    Mutant("mask-read-on-the-scans-grid", "brain3d/data/dataset.py",
           (("resample_array(data, mask.affine, model_affine, size, order=0)",
             "resample_array(data, scan.affine, model_affine, size, order=0)"),),
           ("tests/data/test_dataset.py",), "a mask on a grid of its own is placed as if it were on the scan's grid"),
    Mutant("region-side-sign-swapped", "brain3d/model/regions.py",
           (("sign = torch.where(col < w // 2, 1.0, -1.0)", "sign = torch.where(col < w // 2, -1.0, 1.0)"),),
           ("tests/model/test_regions.py",), "region tokens' side half is right-minus-left, against mirror_pool's"),
    Mutant("supervoxel-side-swapped", "brain3d/explain/maps.py",
           (('"side": "left" if signed[s] < 0 else "right"', '"side": "right" if signed[s] < 0 else "left"'),),
           ("tests/explain/test_maps.py", "tests/explain/test_run.py"), "explanations name each region's side wrongly"),
    Mutant("explain-mirror-word-same", "brain3d/explain/targets.py",
           (('MIRROR = {"left": "right", "right": "left"}', 'MIRROR = {"left": "left", "right": "right"}'),),
           ("tests/explain/test_targets.py",), "the side target contrasts the written side with itself"),
    Mutant("sr-side-codes-swapped", "brain3d/reporting/codes.py",
           (('{"left": codes.SCT.Left, "right": codes.SCT.Right,', '{"left": codes.SCT.Right, "right": codes.SCT.Left,'),),
           ("tests/reporting/test_dicom_sr.py", "tests/reporting/test_fhir.py"),
           "DICOM SR / FHIR code a left lesion as right"),
    # ---- the orientation step
    Mutant("orientation-dropped", "brain3d/orientation.py",
           (("ras = nib.orientations.apply_orientation(data, ornt)  # (X, Y, Z[, C])", "ras = data  # (X, Y, Z[, C])"),
            ("ras_affine = affine @ nib.orientations.inv_ornt_aff(ornt, data.shape[:3])", "ras_affine = affine")),
           ORIENT_TESTS, "volumes are not reoriented to RAS: the stored axis order is taken as RAS"),
    Mutant("orientation-flips-dropped", "brain3d/orientation.py",
           (("ornt = nib.orientations.io_orientation(affine)\n",
             "ornt = nib.orientations.io_orientation(affine)\n    ornt[:, 1] = 1.0\n"),),
           ORIENT_TESTS, "axes are permuted to RAS order but never flipped (an LPS scan keeps L and P)"),
    Mutant("model-axes-transposed", "brain3d/orientation.py",
           (("model = np.transpose(ras, RAS_TO_MODEL)  # (D, H, W)", "model = np.transpose(ras, (2, 0, 1))  # (D, H, W)"),),
           ORIENT_TESTS, "the RAS -> (D, H, W) transpose swaps H and W"),
    Mutant("channel-axes-transposed", "brain3d/orientation.py",
           (("model = np.transpose(ras, (3, 2, 1, 0))  # (C, D, H, W)",
             "model = np.transpose(ras, (3, 2, 0, 1))  # (C, D, H, W)"),),
           ORIENT_TESTS, "multi-channel volumes transpose H and W"),
    Mutant("write-back-inverted", "brain3d/orientation.py",
           (('transform = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(("R", "A", "S")),\n'
             "                                                nib.orientations.axcodes2ornt(tuple(codes)))",
             "transform = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(tuple(codes)),\n"
             '                                                nib.orientations.axcodes2ornt(("R", "A", "S")))'),),
           ORIENT_TESTS, "from_model_axes applies the inverse transform (maps land off the scan's own grid)"),
    Mutant("dicom-lps-x-kept", "brain3d/io.py",
           (("affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps", "affine = np.diag([1.0, -1.0, 1.0, 1.0]) @ lps"),),
           ("tests/test_io.py",), "DICOM/ITK patient x is not negated from LPS to RAS: a flipped patient"),
    Mutant("dicom-lps-dropped", "brain3d/io.py",
           (("affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps", "affine = lps"),),
           ("tests/test_io.py",), "DICOM/ITK LPS coordinates are read as RAS"),
    Mutant("write-nifti-ras-only", "brain3d/io.py",
           (("    if stored_as is None:\n        stored, stored_affine = model_to_ras(data, affine)",
             "    if True:\n        stored, stored_affine = model_to_ras(data, affine)"),),
           ("tests/test_io.py",), "maps are always written RAS, never on the scan's own stored grid"),
    Mutant("lime-map-ras-only", "brain3d/explain/outputs.py",
           (("stored_as=vol.orientation)", "stored_as=None)"),),
           ("tests/explain/test_run.py",), "the LIME NIfTI is written RAS instead of on the scan's own grid"),
    Mutant("overlay-mirrored", "brain3d/serve/views.py",
           (("mapped = resample_array(weights, affine, view.affine, view.grey.shape, order=0)",
             "mapped = resample_array(weights, affine, view.affine, view.grey.shape, order=0)[..., ::-1]"),),
           ("tests/serve/test_laterality.py",), "the page's overlay is drawn on the mirrored side"),
    Mutant("slices-mirrored", "brain3d/viz.py",
           (("return np.take(data, int(np.clip(index, 0, data.shape[axis] - 1)), axis=axis)",
             "return np.take(data, int(np.clip(index, 0, data.shape[axis] - 1)), axis=axis)[:, ::-1]"),),
           ("tests/test_viz.py",), "figures and the page show every slice left-right mirrored"),
    # ---- the mirror compressor
    Mutant("mirror-pool-unflipped", "brain3d/model/compressor.py",
           (("left, right = cells[..., :gw], cells[..., gw:].flip(-1)", "left, right = cells[..., :gw], cells[..., gw:]"),),
           ("tests/model/test_compressor.py",), "cell w is paired with cell gw + w instead of its mirror"),
    Mutant("mirror-pool-off-by-one", "brain3d/model/compressor.py",
           (("left, right = cells[..., :gw], cells[..., gw:].flip(-1)",
             "left, right = cells[..., :gw], cells[..., gw:].flip(-1).roll(1, -1)"),),
           ("tests/model/test_compressor.py",), "mirror pairing off by one cell"),
    Mutant("mirror-pool-halves-swapped", "brain3d/model/compressor.py",
           (("left, right = cells[..., :gw], cells[..., gw:].flip(-1)",
             "right, left = cells[..., :gw], cells[..., gw:].flip(-1)"),),
           ("tests/model/test_compressor.py",), "the difference half is right-minus-left"),
    # ---- truth from masks
    Mutant("truth-hemispheres-swapped", "brain3d/data/truth.py",
           (("left, right = float((s < 0).mean()), float((s > 0).mean())",
             "left, right = float((s > 0).mean()), float((s < 0).mean())"),),
           ("tests/data/test_brats_adapter.py",), "a real scan's lesion side is measured on the wrong side of the plane"),
    Mutant("plane-normal-flipped", "brain3d/data/truth.py",
           (("n = np.array([1.0, np.tan(yaw), np.tan(roll)])", "n = np.array([-1.0, np.tan(yaw), np.tan(roll)])"),),
           ("tests/data/test_brats_adapter.py",), "the midsagittal plane's normal points to the patient's left"),
    Mutant("side-rule-swapped", "brain3d/anatomy/rules.py",
           (('return "left" if left > right else "right"', 'return "right" if left > right else "left"'),),
           ("tests/anatomy/test_rules.py",), "the shared side rule names the side holding less of the lesion"),
    Mutant("phantom-hemispheres-swapped", "brain3d/synth/lesions.py",
           (("left, right = float((x < 0).mean()), float((x > 0).mean())",
             "left, right = float((x > 0).mean()), float((x < 0).mean())"),),
           ("tests/synth/test_phantom.py", "tests/synth/test_cohort.py"), "a phantom's truth side is the other one"),
    Mutant("token-side-halves-swapped", "brain3d/twin/vision_volume.py",
           (("said_left = hit_g[..., : wp // 2].sum((1, 2, 3)) > hit_g[..., wp // 2:].sum((1, 2, 3))",
             "said_left = hit_g[..., wp // 2:].sum((1, 2, 3)) > hit_g[..., : wp // 2].sum((1, 2, 3))"),),
           ("tests/twin/test_vision_volume.py",), "the tower warm-up's held-out side accuracy reads the high-W half as left"),
    Mutant("caption-halves-swapped", "brain3d/twin/vision_pretrain.py",
           (("col = halves(int(lesion[:, : w // 2].sum()), int(lesion[:, w // 2:].sum()))",
             "col = halves(int(lesion[:, w // 2:].sum()), int(lesion[:, : w // 2].sum()))"),),
           ("tests/twin/test_vision_pretrain.py",), "slice captions call the right half of a slice its left"),
    # ---- the image-reliance diagnostics
    Mutant("reliance-mirror-expectation", "brain3d/train/diagnostics.py",
           (('expected = {"left": "right", "right": "left"}.get(', 'expected = {"left": "left", "right": "right"}.get('),),
           ("tests/train/test_diagnostics.py",), "the diagnostics expect the same side for the mirror"),
    Mutant("reliance-probe-unmirrored", "brain3d/train/diagnostics.py",
           (("shuffled, flip_left_right(volume)])", "shuffled, volume])"),),
           ("tests/train/test_diagnostics.py",), "the 'mirrored' probe is the unmirrored volume"),
    Mutant("reliance-verdict-and", "brain3d/train/diagnostics.py",
           (('not (out["text_changes_zero"] or out["text_changes_shuffled"])',
             'not (out["text_changes_zero"] and out["text_changes_shuffled"])'),),
           ("tests/train/test_diagnostics.py",), "a model that reads its image only partly is called image-blind"),
    # ---- the checkpoint's preprocessing
    Mutant("checkpoint-scaling-ignored", "brain3d/eval/evaluate.py",
           (('scaling=str(data.get("scaling", defaults.scaling)))', "scaling=defaults.scaling)"),),
           ("tests/commands/test_checkpoint_preprocessing.py",),
           "report / evaluate / explain / serve preprocess with the default scaling, not the checkpoint's"),
)


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | stale | error
    killer: str
    seconds: float


def copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules", ".pytest_cache")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)


def stale_patches(m: Mutant, text: str) -> list[str]:
    """The old texts of `m` not found exactly once in `text` (empty: the mutant applies)."""
    return [old for old, _ in m.patches if text.count(old) != 1]


def mutate(m: Mutant, text: str) -> str:
    for old, new in m.patches:
        text = text.replace(old, new, 1)
    return text


def run_tests(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--tb=no", "-rfE", "-o", "addopts=",
           *tests]
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    return proc.returncode, proc.stdout + proc.stderr


def first_failure(output: str) -> str:
    m = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", output, flags=re.M)
    if m:
        return m.group(1)
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    return lines[-1][:160] if lines else "?"


def run(mutants: tuple[Mutant, ...], timeout: float, baseline: bool, log=print) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="brain3d-mutants-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        if baseline:
            files = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
            t0 = time.perf_counter()
            rc, out = run_tests(tree, files, timeout * 4)
            if rc != 0:
                raise SystemExit(f"the unmutated tree fails its tests ({first_failure(out)}): fix that first")
            log(f"baseline: {len(files)} test files pass unmutated ({time.perf_counter() - t0:.0f} s)")
        for m in mutants:
            target = tree / m.path
            original = target.read_text(encoding="utf-8")
            stale = stale_patches(m, original)
            if stale:
                outcomes.append(Outcome(m, "stale", f"patch text not found once: {stale[0][:60]!r}", 0.0))
                log(f"{m.name:32s} STALE")
                continue
            target.write_text(mutate(m, original), encoding="utf-8")
            t0 = time.perf_counter()
            try:
                rc, out = run_tests(tree, m.tests, timeout)
            finally:
                target.write_text(original, encoding="utf-8")
            seconds = time.perf_counter() - t0
            if rc == 0:
                status, killer = "survived", "-"
            elif rc == 1:
                status, killer = "killed", first_failure(out)
            else:
                status, killer = ("error", "timeout") if rc == -1 else ("killed", f"pytest exit {rc}: {first_failure(out)}")
            outcomes.append(Outcome(m, status, killer, seconds))
            log(f"{m.name:32s} {status.upper():9s} {seconds:6.1f} s  {killer}")
    return outcomes


def markdown(outcomes: list[Outcome]) -> str:
    killed = sum(o.status == "killed" for o in outcomes)
    lines = [f"{killed} of {len(outcomes)} curated laterality mutants killed.", "",
             "| mutant | file | what it breaks | result | killed by |", "|---|---|---|---|---|"]
    for o in outcomes:
        lines.append(f"| {o.mutant.name} | `{o.mutant.path}` | {o.mutant.what} | {o.status} | `{o.killer}` |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the broader run (mutmut, every operator mutant)
MUTMUT_FILES = ("brain3d/orientation.py", "brain3d/io.py", "brain3d/eval/diagnostics.py", "brain3d/anatomy/rules.py",
                "brain3d/data/dataset.py", "brain3d/vocabulary/terms.py")
# whole modules for orientation, io and the side rule; the mirror / side helpers of the others by name
MUTMUT_NAMES = ("brain3d.orientation.*", "brain3d.io.*", "brain3d.anatomy.rules.*",
                "brain3d.eval.diagnostics.x_mirrored_side__*", "brain3d.eval.diagnostics.x_mirror_test__*",
                "brain3d.data.dataset.x_swap_sides__*", "brain3d.data.dataset.x_mirror_truth__*",
                "brain3d.data.dataset.xǁFlipPolicyǁmirrored__*", "brain3d.data.dataset.xǁVolumeSourceǁ__call____*",
                "brain3d.vocabulary.terms.x_side_of__*", "brain3d.vocabulary.terms.x_side_set__*")
MUTMUT_TESTS = ("tests/test_orientation.py", "tests/test_io.py", "tests/test_preprocess.py", "tests/test_viz.py",
                "tests/eval/test_diagnostics.py", "tests/anatomy/test_rules.py", "tests/data/test_dataset.py",
                "tests/vocabulary/test_terms.py", "tests/train/test_diagnostics.py", "tests/reporting/test_laterality.py",
                "tests/eval/test_laterality.py")


def mutmut_config() -> str:
    def toml_list(items) -> str:
        return "[" + ", ".join(f'"{i}"' for i in items) + "]"

    return ("\n[tool.mutmut]\n"
            'source_paths = ["brain3d"]\n'
            f"only_mutate = {toml_list(MUTMUT_FILES)}\n"
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-o", "addopts=", "-q"]\n'
            f"pytest_add_cli_args_test_selection = {toml_list(MUTMUT_TESTS)}\n"
            "use_git_change_detection = false\n")


def _mutmut_cmd() -> list[str]:
    return [sys.executable, "-c", "import sys; from mutmut.__main__ import cli; sys.exit(cli())"]


def run_mutmut(work: Path, children: int, names: tuple[str, ...] = MUTMUT_NAMES, log=print) -> dict:
    """mutmut over MUTMUT_FILES, the mutants matching `names`, in a copy of the tree at `work` (made when missing);
    returns {"status": {mutant: outcome}, "diffs": {mutant: diff} for those not killed, "seconds", ...}."""
    if not (work / "pyproject.toml").is_file():
        work.mkdir(parents=True, exist_ok=True)
        copy_tree(work)
        with open(work / "pyproject.toml", "a", encoding="utf-8") as fh:
            fh.write(mutmut_config())
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    t0 = time.perf_counter()
    subprocess.run([*_mutmut_cmd(), "run", "--max-children", str(children), *names], cwd=work, env=env,
                   stdout=subprocess.DEVNULL, check=False)
    seconds = time.perf_counter() - t0
    out = subprocess.run([*_mutmut_cmd(), "results", "--all", "true"], cwd=work, env=env, capture_output=True,
                         text=True, encoding="utf-8", check=True).stdout
    status: dict[str, str] = {}
    for line in out.splitlines():
        name, _, st = line.strip().rpartition(": ")
        if name and any(fnmatch(name, pat) for pat in names):
            status[name] = st
    diffs = {name: mutant_diff(work, name, env) for name, st in sorted(status.items()) if st not in KILLED}
    log(f"mutmut: {len(status)} mutants, {sum(st in KILLED for st in status.values())} killed, {len(diffs)} not "
        f"killed ({seconds:.0f} s)")
    from importlib.metadata import version

    return {"mutmut_version": version("mutmut"), "files": list(MUTMUT_FILES), "names": list(MUTMUT_NAMES),
            "tests": list(MUTMUT_TESTS), "seconds": round(seconds, 1), "status": status, "diffs": diffs}


KILLED = ("killed", "segfault")  # a mutant that crashes the test process is caught as surely as a failing test


def mutant_diff(work: Path, name: str, env: dict) -> str:
    shown = subprocess.run([*_mutmut_cmd(), "show", name], cwd=work, env=env, capture_output=True, text=True,
                           encoding="utf-8").stdout
    return "\n".join(ln for ln in shown.splitlines() if ln.startswith(("-", "+")) and not ln.startswith(("---", "+++")))


def merge_mutmut(previous: dict | None, new: dict) -> dict:
    """A rerun of some mutants (after new tests) updates their outcomes; the others keep theirs."""
    if not previous:
        return new
    status = {**previous["status"], **new["status"]}
    diffs = {n: d for n, d in {**previous["diffs"], **new["diffs"]}.items() if status.get(n) not in KILLED}
    runs = previous.get("runs", [{"seconds": previous["seconds"], "mutants": len(previous["status"])}])
    return {**new, "status": status, "diffs": diffs, "seconds": round(sum(r["seconds"] for r in runs) + new["seconds"], 1),
            "runs": [*runs, {"seconds": new["seconds"], "mutants": len(new["status"])}]}


def _recorded() -> dict:
    path = Path(__file__).resolve().parent / "mutation.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _record(key: str, value: dict) -> None:
    """Merge one run's result into bench/mutation.json."""
    path = Path(__file__).resolve().parent / "mutation.json"
    data = _recorded()
    data[key] = value
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# survivors of the broader run that no test can kill, each with the reason (mutmut names are stable for a given source)
_F64 = ("the affine is float64 already (nibabel and the ITK reader make it so) and every product with nibabel's float64 "
        "matrices is float64: the conversion changes no value")
_REVERSE = "np.transpose without axes reverses them, which is exactly this permutation"
_FIRST3 = "the called function reads only the first three entries / the fourth row of an affine's first three columns is 0"
_COPY = "a copy flag: the values are the same either way"
EQUIVALENT: dict[str, str] = {
    "brain3d.orientation.x_orientation_codes__mutmut_4": _F64,
    "brain3d.orientation.x_orientation_codes__mutmut_6": _F64,
    "brain3d.orientation.x_to_model_axes__mutmut_3": _F64,
    "brain3d.orientation.x_to_model_axes__mutmut_5": _F64,
    "brain3d.orientation.x_to_model_axes__mutmut_18": _FIRST3,
    "brain3d.orientation.x_to_model_axes__mutmut_23": _REVERSE,
    "brain3d.orientation.x_to_model_axes__mutmut_25": _REVERSE,
    "brain3d.orientation.x_to_model_axes__mutmut_32": _REVERSE,
    "brain3d.orientation.x_to_model_axes__mutmut_34": _REVERSE,
    "brain3d.orientation.x_model_to_ras__mutmut_5": _REVERSE,
    "brain3d.orientation.x_model_to_ras__mutmut_7": _REVERSE,
    "brain3d.orientation.x_model_to_ras__mutmut_16": _REVERSE,
    "brain3d.orientation.x_model_to_ras__mutmut_18": _REVERSE,
    "brain3d.orientation.x_model_to_ras__mutmut_22": _F64,
    "brain3d.orientation.x_model_to_ras__mutmut_24": _F64,
    "brain3d.orientation.x_from_model_axes__mutmut_30": _FIRST3,
    "brain3d.orientation.x_spacing_of__mutmut_7": _FIRST3,
    "brain3d.orientation.x_index_to_world__mutmut_3": _F64,
    "brain3d.orientation.x_index_to_world__mutmut_5": _F64,
    "brain3d.orientation.x_world_to_index__mutmut_5": _F64,
    "brain3d.orientation.x_world_to_index__mutmut_7": _F64,
    "brain3d.io.x__checked_affine__mutmut_3": _F64,
    "brain3d.io.x__checked_affine__mutmut_5": _F64,
    "brain3d.io.x__checked_affine__mutmut_13": "differs only for a determinant of exactly 1e-9 mm^3, the threshold itself",
    "brain3d.io.x__read_nifti__mutmut_25": "read_volume casts the array to float32 right after; nibabel already returns "
                                           "scaled data as float",
    "brain3d.io.x__read_nifti__mutmut_27": "read_volume casts the array to float32 right after; nibabel already returns "
                                           "scaled data as float",
    "brain3d.io.x__from_sitk__mutmut_68": "read_volume casts the array to float32 right after",
    "brain3d.io.x_nifti_bytes__mutmut_32": "nibabel writes the image's affine into qform and sform already; the "
                                           "explicit set_qform / set_sform that follow put the same one there",
    "brain3d.io.x_nifti_bytes__mutmut_35": "nibabel writes the image's affine into qform and sform when the image is "
                                           "made; set_qform(None, code=1) keeps that qform with code 1",
    "brain3d.io.x_nifti_bytes__mutmut_40": "nibabel writes the image's affine into qform and sform when the image is "
                                           "made; set_sform(None, code=1) keeps that sform with code 1",
    "brain3d.io.x__select_3d__mutmut_14": "a 4th axis shorter than 2 was removed just before (trailing singleton axes)",
    "brain3d.io.x__select_3d__mutmut_46": "the branch before catches ndim == 4, so >= 4 here is > 4",
    "brain3d.io.x__from_sitk__mutmut_21": _REVERSE,
    "brain3d.io.x__from_sitk__mutmut_23": _REVERSE,
    "brain3d.io.x_read_sequences__mutmut_13": "always resampling: onto the identical grid, linear interpolation samples "
                                              "integer coordinates and returns the same values (only slower)",
    "brain3d.io.x_read_sequences__mutmut_24": "always resampling: onto the identical grid, linear interpolation samples "
                                              "integer coordinates and returns the same values (only slower)",
    "brain3d.io.x_read_sequences__mutmut_21": "a grid equal to 1e-4 mm but not to 1e-8 mm is resampled at coordinates "
                                              "off by < 1e-4 voxel: the values change below float32 test tolerance",
    "brain3d.io.x_read_volume__mutmut_65": _COPY,
    "brain3d.io.x_read_volume__mutmut_67": _COPY,
    "brain3d.io.x_read_volume__mutmut_68": _COPY,
    "brain3d.io.x_nifti_bytes__mutmut_11": _COPY,
    "brain3d.io.x_nifti_bytes__mutmut_13": _COPY,
    "brain3d.io.x_nifti_bytes__mutmut_15": _COPY,
    "brain3d.io.x_nifti_bytes__mutmut_52": "compression level 9 instead of 6: the same file content, only its size and "
                                           "speed differ",
    "brain3d.io.x_nifti_bytes__mutmut_54": "compression level 7 instead of 6: the same file content, only its size and "
                                           "speed differ",
    "brain3d.io.x_resample_array__mutmut_23": "numpy 2 reads any negative size in reshape as 'the rest', like -1",
    "brain3d.io.x_resample_array__mutmut_42": "mode='constant' is map_coordinates' default",
    "brain3d.io.x_resample_array__mutmut_43": "cval=0.0 is map_coordinates' default",
    "brain3d.eval.diagnostics.x_mirror_test__mutmut_37": "None is dict.get's default",
    "brain3d.data.dataset.xǁFlipPolicyǁmirrored__mutmut_1": "p = 0 then reaches 'hash < 0', never true: the "
                                                                  "same answer",
    "brain3d.data.dataset.xǁFlipPolicyǁmirrored__mutmut_4": "p = 1 then reaches 'hash mod 1e6 < 1e6', always "
                                                                  "true: the same answer",
    "brain3d.data.dataset.xǁFlipPolicyǁmirrored__mutmut_5": "p >= 2 is never asked for; p in (1, 2) reaches "
                                                                  "'hash mod 1e6 < p 1e6', always true",
    "brain3d.data.dataset.xǁFlipPolicyǁmirrored__mutmut_19": "differs only for a subject whose hash residue is "
                                                                   "exactly p 1e6 (one value in a million)",
    "brain3d.data.dataset.xǁFlipPolicyǁmirrored__mutmut_21": "the threshold moves by p (< 1 of 1e6 residues): "
                                                                   "at most one residue value in a million changes",
    "brain3d.anatomy.rules.x_side_from_shares__mutmut_12": "a tie below the bilateral threshold needs > 70 % of the "
                                                           "lesion's voxels exactly on the plane; the rule's answer for "
                                                           "that degenerate case is arbitrary (the original says right)",
}


def _change(diff: str, context: int = 24) -> str:
    """'old → new' of a one-line mutant, cut to the part that differs plus some context."""
    rows = [x[1:].strip() for x in diff.splitlines()]
    if len(rows) != 2:
        return " → ".join(rows).replace("|", "\\|")
    a, b = rows
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[len(a) - 1 - end] == b[len(b) - 1 - end]:
        end += 1
    lo = max(0, start - context)

    def cut(x: str) -> str:
        hi = min(len(x), len(x) - end + context)
        return ("…" if lo else "") + x[lo:hi] + ("…" if hi < len(x) else "")

    return f"{cut(a)} → {cut(b)}".replace("|", "\\|")


def mutation_markdown(data: dict) -> str:
    """The "Mutation testing" section of bench/results.md from bench/mutation.json."""
    lines = ["## Mutation testing (laterality)", ""]
    curated = data.get("curated")
    if curated:
        lines += ["Curated mutants (`bench/mutants.py`): each patch flips the patient somewhere; the tree is copied, "
                  "patched, and the covering test files run with `pytest -x`. Measured "
                  f"{curated['measured_at']} on a shared, busy 2-core machine ({curated['seconds']:.0f} s in all).", "",
                  f"**{curated['killed']} of {curated['total']} killed.**", "",
                  "| mutant | file | what it breaks | result | killed by |", "|---|---|---|---|---|"]
        lines += [f"| {r['name']} | `{r['path']}` | {r['what']} | {r['status']} | `{r['killer']}` |"
                  for r in curated["rows"]]
        lines += [""]
    mm = data.get("mutmut")
    if mm:
        status, diffs = mm["status"], mm["diffs"]
        total = len(status)
        killed = sum(st in KILLED for st in status.values())
        counts: dict[str, int] = {}
        for st in status.values():
            counts[st] = counts.get(st, 0) + 1
        equivalent = [n for n in diffs if n in EQUIVALENT]
        open_ = [n for n in diffs if n not in EQUIVALENT]
        scored = total - len(equivalent)
        runs = mm.get("runs")
        lines += [f"Broader run (`bench/mutants.py --mutmut`, mutmut {mm.get('mutmut_version', '')}): every operator, "
                  "constant and argument mutant of `brain3d/orientation.py`, `brain3d/io.py` and of the mirror / side "
                  "helpers (`side_from_shares`, `mirrored_side`, `mirror_test`, `swap_sides`, `mirror_truth`, "
                  "`FlipPolicy.mirrored`, `VolumeSource.__call__`, `side_of`, `side_set`), each run against the tests "
                  f"that cover its function ({len(mm['tests'])} test files), in a copy of the tree; "
                  + (f"{len(runs)} runs ({' + '.join(str(r['mutants']) for r in runs)} mutants: the whole set, then "
                     "the functions that still had survivors, after the tests written to kill them), "
                     if runs else "") + f"{mm['seconds']:.0f} s in all on a shared, busy 2-core machine.", "",
                  f"**Mutation score {killed}/{total} = {killed / total:.1%}** (a crash of the test process counts as a "
                  f"kill); the {len(equivalent)} surviving mutants below are equivalent, so {killed}/{scored} = "
                  f"{killed / max(scored, 1):.1%} of the mutants that can be killed are. Outcomes: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".", ""]
        if equivalent:
            lines += ["| surviving mutant | change | why no test can kill it |", "|---|---|---|"]
            for n in equivalent:
                lines.append(f"| {n.removeprefix('brain3d.')} | `{_change(diffs[n])}` | {EQUIVALENT[n]} |")
            lines += [""]
        lines += [f"Surviving and not explained: {len(open_)}" + (" — " + ", ".join(open_) if open_ else "."), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="run only these mutants")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant's test run")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of every test file")
    ap.add_argument("--markdown", type=Path, help="also write the table here")
    ap.add_argument("--mutmut", action="store_true", help="the broader mutmut run instead (writes bench/mutation.json)")
    ap.add_argument("--work", type=Path, help="with --mutmut: the folder of the tree copy (kept, so a rerun resumes)")
    ap.add_argument("--children", type=int, default=2, help="with --mutmut: parallel mutant runs")
    ap.add_argument("--names", nargs="*", help="with --mutmut: rerun only these mutant patterns (e.g. after new tests) "
                                               "and merge their outcomes into bench/mutation.json")
    a = ap.parse_args(argv)
    if a.mutmut:
        names = tuple(a.names) if a.names else MUTMUT_NAMES
        if a.work is not None:
            result = run_mutmut(a.work, a.children, names)
        else:
            with tempfile.TemporaryDirectory(prefix="brain3d-mutmut-") as tmp:
                result = run_mutmut(Path(tmp), a.children, names)
        _record("mutmut", merge_mutmut(_recorded().get("mutmut") if a.names else None, result))
        return 0
    chosen = MUTANTS
    if a.only:
        unknown = set(a.only) - {m.name for m in MUTANTS}
        if unknown:
            ap.error(f"unknown mutants: {', '.join(sorted(unknown))}")
        chosen = tuple(m for m in MUTANTS if m.name in a.only)
    if a.list:
        for m in chosen:
            print(f"{m.name:32s} {m.path:34s} {m.what}")
        return 0
    t0 = time.perf_counter()
    outcomes = run(chosen, a.timeout, baseline=not a.no_baseline)
    table = markdown(outcomes)
    print("\n" + table)
    if a.markdown:
        a.markdown.write_text(table, encoding="utf-8")
    if chosen == MUTANTS:  # a full run is recorded for bench/results.md
        from datetime import datetime, timezone

        curated = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="minutes"),
                   "seconds": round(time.perf_counter() - t0, 1), "total": len(outcomes),
                   "killed": sum(o.status == "killed" for o in outcomes),
                   "rows": [{"name": o.mutant.name, "path": o.mutant.path, "what": o.mutant.what, "status": o.status,
                             "killer": o.killer, "seconds": round(o.seconds, 1)} for o in outcomes]}
        _record("curated", curated)
    return 0 if all(o.status == "killed" for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
