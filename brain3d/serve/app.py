"""The FastAPI application: REST routes, probes, metrics, the page and its views.

Every error a client can cause is answered as JSON `{"error": sentence}` with a 4xx status (503 + Retry-After when
a queue is full or the service is draining, 507 when the server has no room for the upload); the sentence is the one
the CLI would print for the same file, naming the file as the client named it. With a token configured, every
endpoint but the probes and the page's static files answers 401 without it (brain3d.serve.auth).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from brain3d.errors import Brain3DError
from brain3d.reporting.schema import ReportRecord
from brain3d.serve.auth import BearerAuth
from brain3d.serve.batcher import QueueFull, ShuttingDown
from brain3d.serve.config import ServeConfig
from brain3d.serve.metrics import Metrics
from brain3d.serve.scans import LoadedScan, load_upload
from brain3d.serve.service import ReportJob, ReportService
from brain3d.serve.uploads import UploadError, receive_form
from brain3d.serve.views import View, ViewStore, overlay_on, slice_png, view_of, volume_nifti

STATIC = Path(__file__).parent / "static"
NIIVUE = Path(__file__).parent / "web" / "node_modules" / "@niivue" / "niivue" / "dist" / "niivue.umd.js"
Plane = Literal["axial", "coronal", "sagittal"]

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "One part per sequence, in the model's order (GET /v1/model): a NIfTI "
                                 "(.nii/.nii.gz), NRRD, MetaImage (.mha) or a zip of one DICOM series. Recognised by "
                                 "content, not by name."},
        "phantom": {"type": "string", "description": "Instead of files: the id of a demo phantom (GET /v1/phantoms)."},
    }}}}}}
ERRORS = {code: {"description": text, "content": {"application/json": {"example": {"error": example}}}}
          for code, text, example in [
              (400, "Malformed request", "sent 2 files but the model needs 1 (flair), one 'files' part each, in that order"),
              (401, "No or wrong token (when the service has one)", "the token is not valid for this service"),
              (404, "Unknown phantom or view", "there is no demo phantom 'x'; GET /v1/phantoms lists them"),
              (413, "Upload too large", "upload is larger than the limit of 512 MB"),
              (415, "Not a volume format", "notes.txt: is not a volume this service reads (...)"),
              (422, "Not a usable 3D volume", "scan.nii.gz: is truncated or corrupt (...)"),
              (503, "Queue full, draining before a stop, or model not loaded", "the report queue is full; retry in 2 s"),
              (507, "No room on the server for the upload", "the server has no room for this upload (its upload "
                                                             "folder is full or read-only); retry later")]}


def create_app(cfg: ServeConfig, service: ReportService | None = None) -> FastAPI:
    """The app for one service; its lifespan starts the service (model load in the background) and stops it,
    removing the private upload folder."""
    metrics = service.metrics if service is not None else Metrics()
    service = service or ReportService(cfg, metrics)
    views = ViewStore(cfg.views)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        service.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(title="brain3d", version="1", lifespan=lifespan,
                  description="Radiology reports from 3D brain MRI (Brain3D method). Research software: every report "
                              "needs a radiologist's review.")
    app.state.service, app.state.views, app.state.metrics = service, views, metrics
    if cfg.token is not None:
        app.add_middleware(BearerAuth, token=cfg.token)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)  # outermost: refusals are counted too
    _error_handlers(app, service)

    @app.get("/healthz", tags=["probes"], summary="Liveness: the process answers")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"], summary="Readiness: the model is loaded, the workers run, not draining")
    def readyz() -> JSONResponse:
        if service.ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": _status(service), "error": service.load_error}, status_code=503)

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics")
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/health", tags=["service"], summary="Model, device and queue")
    def health() -> dict:
        model = service.model
        explainer = service.explainer
        return {"status": "ok" if service.ready else _status(service),
                "error": service.load_error, "model": str(cfg.checkpoint),
                "device": str(model.device) if model is not None else None,
                "queue": {"length": service.batcher.admitted, "capacity": cfg.queue_size, "batch": cfg.batch},
                "explain_queue": {"length": explainer.admitted, "capacity": cfg.explain_queue_size,
                                  "running": explainer.running}}

    @app.get("/v1/model", tags=["service"], summary="The checkpoint's config, sequences and image size")
    def model_info() -> dict:
        _require_ready(service)
        return service.model_info()

    @app.get("/v1/phantoms", tags=["service"], summary="Demo phantoms the page can report on")
    def phantoms() -> list[dict]:
        return service.phantoms.listing()

    @app.post("/v1/reports", tags=["reports"], response_model=ReportRecord, summary="Report on one scan",
              openapi_extra=UPLOAD_BODY, responses=ERRORS)
    async def create_report(
        request: Request,
        mirror_check: bool = Query(False, description="Also report the left-right mirrored scan and flag a report "
                                                      "whose side does not flip (laterality_consistent)."),
        explain: Literal["side"] | None = Query(None, description="Add a 3D LIME explanation of the report's side "
                                                                  "(slow: many model runs)."),
        series_uid: str | None = Query(None, description="The DICOM series to read when the zip holds several."),
        volume_index: int | None = Query(None, ge=0, description="The volume to read from a 4D NIfTI."),
        view: bool = Query(False, description="Keep the scan for the page's slice views (Brain3D-View header)."),
    ) -> JSONResponse:
        _require_ready(service)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cfg.max_upload_bytes:
            raise UploadError(f"upload is larger than the limit of {cfg.max_upload_mb} MB", 413)
        with service.admission(explain is not None):  # its own lane: an explanation never holds up a plain report
            folder = service.request_folder()
            try:
                upload = await receive_form(request.stream(), request.headers.get("content-type"), folder,
                                            cfg.max_upload_bytes)
                scan = await run_in_threadpool(_load, service, cfg, upload, folder, series_uid, volume_index)
                job = ReportJob(scan, mirror_check, explain)
                result = await asyncio.wrap_future(service.submit(job))
                if explain is not None and result.record.error is None:
                    result = await asyncio.wrap_future(service.explain(job, result))
            finally:
                await run_in_threadpool(shutil.rmtree, folder, True)
        body = result.record.model_dump(mode="json")
        headers = {}
        if view:
            page_view = await run_in_threadpool(_page_view, scan, result.attribution)
            headers["Brain3D-View"] = f"/v1/views/{views.add(page_view)}"
        return JSONResponse(body, headers=headers)

    @app.get("/v1/views/{view_id}", tags=["page"], summary="A kept scan's grid, planes and labels")
    def view_info(view_id: str) -> dict:
        return _view(views, view_id).info()

    @app.get("/v1/views/{view_id}/{plane}/{index}.png", tags=["page"], summary="One slice as PNG")
    def view_slice(view_id: str, plane: Plane, index: int, overlay: bool = True) -> Response:
        return Response(slice_png(_view(views, view_id), plane, index, overlay), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=600"})

    @app.get("/v1/views/{view_id}/volume.nii.gz", tags=["page"], summary="The kept scan as RAS NIfTI")
    def view_volume(view_id: str) -> Response:
        return Response(volume_nifti(_view(views, view_id)), media_type="application/gzip")

    @app.get("/v1/views/{view_id}/overlay.nii.gz", tags=["page"], summary="The LIME overlay as RAS NIfTI")
    def view_overlay(view_id: str) -> Response:
        v = _view(views, view_id)
        if v.overlay is None:
            raise HTTPException(404, "this view has no explanation overlay")
        return Response(volume_nifti(v, overlay=True), media_type="application/gzip")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/static/vendor/niivue.umd.js", include_in_schema=False)
    def niivue() -> Response:
        if not NIIVUE.is_file():
            raise HTTPException(404, "NiiVue is not installed (npm install in brain3d/serve/web); the page shows "
                                     "server-rendered slices")
        return FileResponse(NIIVUE, media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _load(service: ReportService, cfg: ServeConfig, upload, folder: Path, series_uid: str | None,
          volume_index: int | None) -> LoadedScan:
    """The request's scan: a demo phantom named in the form, or the uploaded file parts."""
    phantom = upload.fields.get("phantom")
    if phantom is not None and upload.files:
        raise UploadError("send either files or a phantom id, not both", 400)
    if phantom is not None:
        return service.phantoms.load(phantom, service.sequences, service.preprocess)
    if not upload.files:
        raise UploadError("no scan in the request: send one 'files' part per sequence (or a 'phantom' field)", 400)
    return load_upload(upload, folder, service.sequences, service.preprocess,
                       cfg.max_upload_bytes * cfg.zip_factor, cfg.max_zip_members, series_uid, volume_index)


def _page_view(scan: LoadedScan, attribution: tuple | None) -> View:
    """What the page shows of a reported scan: its grey volume and, after an explanation, the attribution."""
    page_view = view_of(scan.volume)
    if attribution is not None:
        page_view.overlay = overlay_on(page_view, *attribution)
    return page_view


def _status(service: ReportService) -> str:
    """What a service that is not ready is doing: draining, error (the model failed to load) or loading."""
    return "draining" if service.draining else ("error" if service.load_error else "loading")


def _require_ready(service: ReportService) -> None:
    if service.draining:
        raise ShuttingDown()
    if not service.ready:
        raise HTTPException(503, service.load_error or "the model is still loading; retry shortly")


def _view(views: ViewStore, view_id: str) -> View:
    v = views.get(view_id)
    if v is None:
        raise HTTPException(404, "no such view (views are kept for the most recent reports only)")
    return v


def _error_handlers(app: FastAPI, service: ReportService) -> None:
    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(UploadError)
    async def upload_error(_request: Request, exc: UploadError) -> JSONResponse:
        return error(exc.status, str(exc))

    @app.exception_handler(Brain3DError)
    async def brain3d_error(_request: Request, exc: Brain3DError) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(QueueFull)
    async def queue_full(_request: Request, exc: QueueFull) -> JSONResponse:
        (service.metrics.explain_rejected if exc.queue == "explanation" else service.metrics.rejected).inc()
        return error(503, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(ShuttingDown)
    async def shutting_down(_request: Request, exc: ShuttingDown) -> JSONResponse:
        return error(503, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        headers = {"Retry-After": "5"} if exc.status_code == 503 else None
        return error(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = " ".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path"))
        return error(422, f"{where}: {first.get('msg', 'invalid request')}".strip(": "))


class _MetricsMiddleware:
    """Counts every request by method, route template (not the raw path: ids would explode the series) and status,
    and times it."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_status(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], route, str(status["code"])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - t0)
