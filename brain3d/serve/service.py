"""The model behind the web service: loaded once (in the background, so probes answer meanwhile), fed by two
lanes, with a private upload folder that lives and dies with it.

Reports go through the batcher and `brain3d report`'s own batch generator; explanations (`?explain=`, many model
runs each) through a lane of their own, one at a time on a worker of lower CPU priority, so plain reports keep their
latency. On SIGTERM/SIGINT the service drains: it admits nothing new (503 + Retry-After, /readyz not ready), lets
what it admitted finish within `drain_timeout_s`, answers what is left 503, and then stops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from brain3d.errors import Brain3DError, OutputError
from brain3d.fsutil import disk_errno, ensure_dir, output_error, writing_into
from brain3d.reporting.inputs import ScanInput
from brain3d.reporting.runner import ReportOptions, generate_records
from brain3d.reporting.schema import ReportRecord, SideExplanation
from brain3d.serve.batcher import Batcher, ShuttingDown
from brain3d.serve.config import ServeConfig
from brain3d.serve.metrics import Metrics
from brain3d.serve.scans import LoadedScan, Phantoms, retold
from brain3d.serve.uploads import storage_error

log = logging.getLogger("brain3d.serve")


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
    """Owns the model, the two lanes (reports, explanations), the drain and the private upload folder."""

    def __init__(self, cfg: ServeConfig, metrics: Metrics) -> None:
        self.cfg, self.metrics = cfg, metrics
        self.model = None
        self.preprocess = None
        self.sequences: tuple[str, ...] = ()
        self.load_error: str | None = None
        self.phantoms = Phantoms(cfg.phantoms)
        self.batcher = Batcher(self._run_batch, cfg.batch, cfg.queue_size, cfg.max_wait_ms / 1000,
                               on_batch=self._on_batch, name="report")
        self.explainer = Batcher(self._run_explanations, 1, cfg.explain_queue_size, 0.0, on_batch=self._on_explained,
                                 name="explanation", nice=cfg.explain_nice, max_retry_after=600)
        self.tmp_root: Path | None = None
        self.draining = False
        self.drain_started: float | None = None
        self.aborted = 0  # admitted requests answered 503 because the drain ran out of time
        self._stopped = False
        metrics.capacity.set(cfg.queue_size)
        metrics.queue.set_function(lambda: self.batcher.admitted)
        metrics.explain_capacity.set(cfg.explain_queue_size)
        metrics.explain_queue.set_function(lambda: self.explainer.admitted)

    @property
    def ready(self) -> bool:
        return self.model is not None and self.batcher.alive and self.explainer.alive and not self.draining

    @property
    def idle(self) -> bool:
        """Nothing admitted in either lane."""
        return self.batcher.admitted == 0 and self.explainer.admitted == 0

    @contextlib.contextmanager
    def admission(self, explain: bool = False) -> Iterator[None]:
        """A place in the request's lane for its whole life, or QueueFull / ShuttingDown at once."""
        if self.draining:
            raise ShuttingDown()
        with (self.explainer if explain else self.batcher).admission():
            yield

    def begin_drain(self) -> None:
        """Stop admitting; what was admitted goes on (SIGTERM / SIGINT)."""
        if not self.draining:
            self.draining, self.drain_started = True, time.monotonic()
            self.metrics.draining.set(1)
            log.warning("draining: %d report and %d explanation requests to finish (at most %.0f s)",
                        self.batcher.admitted, self.explainer.admitted, self.cfg.drain_timeout_s)

    def drained(self) -> bool:
        """Whether the drain is over: nothing admitted is left, or time ran out and what was left got its 503."""
        if not self.draining:
            return False
        if self.idle:
            return True
        if time.monotonic() - self.drain_started < self.cfg.drain_timeout_s:
            return False
        exc = ShuttingDown(admitted=True)
        self.aborted += self.batcher.abort(exc) + self.explainer.abort(exc)
        return True

    def start(self) -> None:
        """Create the private upload folder (mode 0700) and load the model in a background thread."""
        self.tmp_root = private_folder(self.cfg.tmp_root)
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
        self.explainer.start()

    def stop(self, join_s: float = 5.0) -> None:
        """Stop both workers (a batch still computing after a drain that ran out of time is left to its daemon
        thread) and remove the private upload folder; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self.batcher.stop(join_s)
        self.explainer.stop(join_s)
        if self.tmp_root is not None:
            shutil.rmtree(self.tmp_root, ignore_errors=True)

    def request_folder(self) -> Path:
        """A fresh private folder for one request's files (removed by the caller when the request ends)."""
        assert self.tmp_root is not None, "start() the service first"
        try:
            return Path(tempfile.mkdtemp(dir=self.tmp_root))
        except OSError as exc:
            if disk_errno(exc) is None:
                raise
            raise storage_error(exc, self.tmp_root) from None

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

    def _on_explained(self, _size: int, seconds: float) -> None:
        self.metrics.explain_seconds.observe(seconds)

    def submit(self, job: ReportJob):
        """Queue a job; jobs batch with others of the same mirror-check setting. Returns a Future of ReportResult."""
        return self.batcher.submit(job.mirror_check, job)

    def explain(self, job: ReportJob, result: ReportResult):
        """Queue the explanation of a finished report on the explanation lane. Returns a Future of the ReportResult,
        its record's `explanation` (and the page's attribution) filled in."""
        return self.explainer.submit(job.explain, (job, result))

    def _run_batch(self, jobs: list[ReportJob]) -> list[ReportResult]:
        """Reports for a batch of loaded scans through `generate_records`."""
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
        return results

    def _run_explanations(self, items: list[tuple[ReportJob, ReportResult]]) -> list[ReportResult]:
        for job, result in items:
            self._explain(job, result)
            failed = result.record.explanation is None or result.record.explanation.error is not None
            self.metrics.explanations.labels("error" if failed else "ok").inc()
        return [result for _, result in items]

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


def private_folder(parent: Path | None) -> Path:
    """A new folder only this process may read (mode 0700) under `parent` (default: the system's temp folder); a
    parent that is full or read-only is one OutputError naming it."""
    try:
        if parent is not None:
            ensure_dir(parent)
        with writing_into(parent if parent is not None else tempfile.gettempdir()):
            return Path(tempfile.mkdtemp(prefix="brain3d-serve-", dir=parent))
    except OutputError as exc:
        raise output_error(exc, exc.path, "then start the service again") from None
