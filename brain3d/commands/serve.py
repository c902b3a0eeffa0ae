"""`brain3d serve`: the REST service and web page (see brain3d/serve/)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from brain3d.errors import CheckpointError
from brain3d.serve.config import INSECURE_FLAG, TOKEN_ENV, is_loopback


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Trained checkpoint folder "
                                                  "(default: the demo's, demo_out/run/phase2b)."),
        host: str = typer.Option("127.0.0.1", help="Address to listen on; only this machine by default. Any other "
                                                   "address needs a token (--token-file)."),
        port: int = typer.Option(8000, help="Port to listen on."),
        max_upload_mb: int = typer.Option(512, min=1, help="Largest request body (a 4-sequence BraTS case is "
                                                            "30-100 MB)."),
        batch: int = typer.Option(8, min=1, help="Scans generated together."),
        queue_size: int = typer.Option(32, min=1, help="Requests admitted at once; more get 503 + Retry-After."),
        max_wait_ms: int = typer.Option(25, min=0, help="How long to wait to fill a batch."),
        device: str = typer.Option("auto", help="auto, cpu or cuda."),
        profile: str = typer.Option("greedy", help="Decoding: greedy (deterministic) or paper (sampling)."),
        max_new_tokens: int = typer.Option(256, min=1, help="Longest report, in tokens."),
        vision_model: Optional[Path] = typer.Option(None, help="Override the vision base-model folder."),
        language_model: Optional[Path] = typer.Option(None, help="Override the language base-model folder."),
        load_4bit: bool = typer.Option(False, "--load-4bit", help="Load the language model in 4-bit NF4."),
        explain_samples: int = typer.Option(100, min=2, help="LIME samples per ?explain=side request."),
        explain_queue_size: int = typer.Option(2, min=1, help="?explain= requests admitted at once, on their own "
                                                              "lane; more get 503 + Retry-After."),
        drain_timeout: float = typer.Option(25.0, min=0, help="On SIGTERM/SIGINT: seconds admitted requests may "
                                                              "take to finish before they are answered 503 and the "
                                                              "process exits 0."),
        token_file: Optional[Path] = typer.Option(None, "--token-file", help="File holding the bearer token that "
                                                  "every endpoint but /healthz, /readyz and the page's static files "
                                                  f"requires (or set {TOKEN_ENV})."),
        insecure_no_token: bool = typer.Option(False, INSECURE_FLAG, help="Listen beyond loopback WITHOUT a token: "
                                               "anyone who can reach the port may upload scans and read reports."),
        tmp_dir: Optional[Path] = typer.Option(None, "--tmp-dir", help="Where the private upload folder is made "
                                                                      "(default: the system's temp folder)."),
        phantoms: Optional[Path] = typer.Option(None, help="Manifest whose test scans the page offers as examples "
                                                           "(default: the demo cohort's, with the demo checkpoint)."),
    ) -> None:
        """Serve reports over HTTP: REST API (/docs), probes, /metrics and a web page at /."""
        from brain3d.commands.report import resolve_checkpoint
        from brain3d.serve.app import create_app
        from brain3d.serve.config import ServeConfig, read_token
        from brain3d.serve.server import run
        from brain3d.serve.service import private_folder

        ckpt, is_demo = resolve_checkpoint(checkpoint)
        if not (ckpt / "config.json").is_file():  # say so now, not from a background thread after listening
            raise CheckpointError("is not a brain3d checkpoint (no config.json)", ckpt)
        if is_demo:
            typer.echo(f"using the demo checkpoint {ckpt} (pass --checkpoint to choose another)", err=True)
            phantoms = phantoms or demo_phantoms(ckpt)
        token = read_token(token_file) if token_file is not None else (os.environ.get(TOKEN_ENV) or "").strip() or None
        cfg = ServeConfig(checkpoint=ckpt, host=host, port=port, max_upload_mb=max_upload_mb, batch=batch,
                          queue_size=queue_size, max_wait_ms=max_wait_ms, device=device, profile=profile,
                          max_new_tokens=max_new_tokens, vision_model=vision_model, language_model=language_model,
                          load_4bit=load_4bit, explain_samples=explain_samples, phantoms=phantoms,
                          explain_queue_size=explain_queue_size, drain_timeout_s=drain_timeout, token=token,
                          insecure_no_token=insecure_no_token, tmp_root=tmp_dir)
        private_folder(cfg.tmp_root).rmdir()  # a full or read-only folder: say so now, before listening
        if token is None and not is_loopback(host):
            typer.echo(f"WARNING: listening on {host} WITHOUT A TOKEN ({INSECURE_FLAG}): anyone who can reach this "
                       "port can upload scans and read reports", err=True)
        typer.echo(f"brain3d serve: http://{host}:{port}/ (API docs at /docs"
                   + ("; every API request needs the token" if token else "") + ")", err=True)
        done = run(create_app(cfg), host, port)
        if done["drained"]:
            typer.echo(f"brain3d serve: stopped after draining for {done['seconds']} s"
                       + (f"; {done['aborted']} unfinished requests were answered 503" if done["aborted"] else ""),
                       err=True)


def demo_phantoms(ckpt: Path) -> Path | None:
    """The demo cohort's manifest beside a demo checkpoint (demo_out/run/phase2b → demo_out/cohort)."""
    manifest = Path(ckpt).parent.parent / "cohort" / "manifest.jsonl"
    return manifest if manifest.is_file() else None
