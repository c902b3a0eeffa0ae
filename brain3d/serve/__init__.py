"""`brain3d serve`: a REST service and a web page that write reports from uploaded scans.

config (ServeConfig; loopback and token rules) · auth (bearer token on everything but probes and the page shell) ·
uploads (streamed, capped multipart parsing into a private folder; content sniffing) · scans (uploaded files →
validated volumes, errors retold with the client's file names) · batcher (a bounded queue feeding one worker) ·
service (the model, the report and explanation lanes, the drain) · server (uvicorn whose SIGTERM drains) · views
(in-memory slice/volume views for the page) · metrics (Prometheus) · app (FastAPI routes) · static/ (the page;
NiiVue from npm when installed, server-rendered PNG slices otherwise).
"""
