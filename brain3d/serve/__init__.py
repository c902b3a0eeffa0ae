"""`brain3d serve`: a REST service and a web page that write reports from uploaded scans.

config (ServeConfig) · uploads (streamed, capped multipart parsing into a private folder; content sniffing) ·
scans (uploaded files → validated volumes, errors retold with the client's file names) · batcher (the queue that
batches requests into the model) · views (in-memory slice/volume views for the page) · metrics (Prometheus) ·
app (FastAPI routes) · static/ (the page; NiiVue from npm when installed, server-rendered PNG slices otherwise).
"""
