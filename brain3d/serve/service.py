"""The model behind the web service: loaded once (in the background, so probes answer meanwhile), fed by the
batcher through `brain3d report`'s own batch generator, with a private upload folder that lives and dies with it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from brain3d.errors import Brain3DError
from brain3d.reporting.inputs import ScanInput
from brain3d.reporting.runner import ReportOptions, generate_records
from brain3d.reporting.schema import ReportRecord, SideExplanation
from brain3d.serve.batcher import Batcher
from brain3d.serve.config import ServeConfig
from brain3d.serve.metrics import Metrics
from brain3d.serve.scans import LoadedScan, Phantoms, retold


EXPLAIN_TARGETS = ("side",)  # what `?explain=` accepts: the side explanation `brain3d report --explain` records


@dataclass
class ReportJob:
    """One queued request: the loaded scan and whether a LIME explanation of a target was asked for."""

    scan: LoadedScan
    mirror_check: bool = False
    explain: str | None = None


@dataclass
class ReportResult:
    """A job's record (with `explanation` set when one was asked for) and the attribution map for the page:
    (map (D, H, W) on the model grid, its index → world RAS affine), or None."""

    record: ReportRecord
    attribution: tuple | None = None


class ReportService:
    """Owns the model, the batcher and the private upload folder."""

    def __init__(self, cfg: ServeConfig, metrics: Metrics) -> None:
        self.cfg, self.metrics = cfg, metrics
        self.model = None
        self.preprocess = None
        self.sequences: tuple[str, ...] = ()
        self.load_error: str | None = None
        self.phantoms = Phantoms(cfg.phantoms)
        self.batcher = Batcher(self._run_batch, cfg.batch, cfg.queue_size, cfg.max_wait_ms / 1000,
                               on_batch=self._on_batch)
        self.tmp_root: Path | None = None
        metrics.capacity.set(cfg.queue_size)
        metrics.queue.set_function(lambda: self.batcher.admitted)

    @property
    def ready(self) -> bool:
        return self.model is not None and self.batcher.alive

    def start(self) -> None:
        """Create the private upload folder (mode 0700) and load the model in a background thread."""
        parent = self.cfg.tmp_root
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)
        self.tmp_root = Path(tempfile.mkdtemp(prefix="brain3d-serve-", dir=parent))
        threading.Thread(target=self._load, name="brain3d-load", daemon=True).start()

    def _load(self) -> None:
        from brain3d.eval.evaluate import EvaluateOptions, load_model, preprocess_for

        cfg = self.cfg
        try:
            model = load_model(cfg.checkpoint, EvaluateOptions(
                device=cfg.device, vision_model=cfg.vision_model, language_model=cfg.language_model,
                load_4bit=cfg.load_4bit or None))
        except Exception as exc:  # readiness reports it; the process keeps answering probes
            self.load_error = str(exc) if isinstance(exc, Brain3DError) else f"the model failed to load: {exc}"
            return
        self.preprocess, self.sequences = preprocess_for(model), tuple(model.config.sequences)
        self.model = model
        self.batcher.start()

    def stop(self) -> None:
        self.batcher.stop()
        if self.tmp_root is not None:
            shutil.rmtree(self.tmp_root, ignore_errors=True)

    def request_folder(self) -> Path:
        """A fresh private folder for one request's files (removed by the caller when the request ends)."""
        assert self.tmp_root is not None, "start() the service first"
        return Path(tempfile.mkdtemp(dir=self.tmp_root))

    def model_info(self) -> dict:
        """The checkpoint's config and what the service does with it (GET /v1/model)."""
        cfg = self.cfg
        config = json.loads((Path(cfg.checkpoint) / "config.json").read_text(encoding="utf-8"))
        return {"checkpoint": str(cfg.checkpoint), "config": config, "sequences": list(self.sequences),
                "image_size": list(self.preprocess.size) if self.preprocess else config.get("image_size"),
                "preprocess": self.preprocess.to_dict() if self.preprocess else None,
                "device": str(self.model.device) if self.model is not None else None,
                "profile": cfg.profile, "max_new_tokens": cfg.max_new_tokens, "batch": cfg.batch,
                "explain_targets": list(EXPLAIN_TARGETS)}

    # ---- the worker thread ----

    def _on_batch(self, size: int, seconds: float) -> None:
        self.metrics.batch_size.observe(size)
        self.metrics.generation.observe(seconds)

    def submit(self, job: ReportJob):
        """Queue a job; jobs batch with others of the same mirror-check setting. Returns a Future of ReportResult."""
        return self.batcher.submit(job.mirror_check, job)

    def _run_batch(self, jobs: list[ReportJob]) -> list[ReportResult]:
        """Reports for a batch of loaded scans through `generate_records`, then any explanations asked for."""
        tokens = [uuid.uuid4().hex for _ in jobs]  # unique ids: two uploads may share a file name
        by_token = dict(zip(tokens, jobs))
        scans = [ScanInput(token, job.scan.names, "upload") for token, job in by_token.items()]
        opts = ReportOptions(checkpoint=str(self.cfg.checkpoint), profile=self.cfg.profile, batch_size=len(scans),
                             mirror_check=jobs[0].mirror_check, max_new_tokens=self.cfg.max_new_tokens)
        results = []
        for rec in generate_records(self.model, scans, opts, self.preprocess,
                                    loader=lambda scan, _pre: by_token[scan.id].scan.model):
            job = by_token[rec.id]
            rec.id, rec.seconds = job.scan.id, round(rec.seconds + job.scan.seconds, 4)
            self.metrics.reports.labels("error" if rec.error else "ok").inc()
            results.append(ReportResult(rec))
        for job, result in zip(jobs, results):
            if job.explain is not None and result.record.error is None:
                self._explain(job, result)
        return results

    def _explain(self, job: ReportJob, result: ReportResult) -> None:
        """The report's side explained by 3D LIME, as `brain3d report --explain` records it; the map is kept for the
        page. A report without a side, or a failure, is stated in the explanation's error and the report stands."""
        from brain3d.explain import ExplainConfig, explain_scan

        scan = job.scan
        cfg = ExplainConfig(target=job.explain, samples=self.cfg.explain_samples, max_new_tokens=self.cfg.max_new_tokens,
                            png=False)
        try:
            exp = explain_scan(self.model, ScanInput(scan.id, scan.paths, "upload", meta={"series_uid": scan.series_uid}),
                               cfg, out=None, report=result.record.report)
        except Brain3DError as exc:
            result.record.explanation = SideExplanation(error=str(retold(exc, dict(zip(scan.paths, scan.names)))))
            return
        result.record.explanation = SideExplanation.of(exp)
        result.attribution = (exp.map_model, exp.model_affine)
