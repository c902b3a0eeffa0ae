// The brain3d page: upload a scan or pick a phantom, POST /v1/reports?view=true, then show the report, the
// mirror-check verdict, the explanation and the kept view as three server-rendered slices with sliders
// (always) and, when NiiVue is installed and the browser has WebGL2, an interactive multiplanar viewer.
// When the service has a token, the first 401 asks for it once (kept for this browser tab only) and every request,
// images included, carries it as `Authorization: Bearer`.
"use strict";

const $ = (sel) => document.querySelector(sel);
const PLANES = ["axial", "coronal", "sagittal"];
const TOKEN_KEY = "brain3d-token";
let current = null; // {url, info}
let asking = null; // the pending token question, shared by every request that met a 401

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? {Authorization: `Bearer ${token}`} : {};
}

// fetch with the token; on 401 ask for it (once for all waiting requests) and try again
async function api(url, opts = {}) {
  for (;;) {
    const r = await fetch(url, {...opts, headers: {...(opts.headers || {}), ...authHeaders()}});
    if (r.status !== 401) return r;
    const rejected = sessionStorage.getItem(TOKEN_KEY) !== null;
    sessionStorage.removeItem(TOKEN_KEY);
    await askToken(rejected ? "That token was not accepted; enter this service's token."
                            : "This service needs a token (ask whoever runs it).");
  }
}

function askToken(message) {
  if (!asking) {
    asking = new Promise((done) => {
      document.body.dataset.tokenAsked = String(Number(document.body.dataset.tokenAsked || 0) + 1);
      $("#token-note").textContent = message;
      $("#token-panel").hidden = false;
      $("#token").focus();
      $("#token-form").onsubmit = (ev) => {
        ev.preventDefault();
        const token = $("#token").value.trim();
        if (!token) return;
        sessionStorage.setItem(TOKEN_KEY, token);
        $("#token").value = "";
        $("#token-panel").hidden = true;
        asking = null;
        done();
      };
    });
  }
  return asking;
}

// an image (or a NiiVue volume) fetched with the token, as an object URL
async function objectUrl(url) {
  const r = await api(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return URL.createObjectURL(await r.blob());
}

async function showImage(img, url) {
  img.dataset.src = url;
  try {
    const blobUrl = await objectUrl(url);
    if (img.dataset.src !== url) return URL.revokeObjectURL(blobUrl); // a newer slice was asked for meanwhile
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.src = blobUrl;
  } catch (e) {
    img.alt = `slice unavailable (${e.message})`;
  }
}

function setStatus(text, isError) {
  const el = $("#status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function init() {
  try {
    const r = await api("/v1/phantoms");
    for (const p of await r.json()) {
      const o = document.createElement("option");
      o.value = p.id;
      const truth = p.healthy ? "healthy" : [p.side, (p.lobes || []).join("/")].filter(Boolean).join(", ");
      o.textContent = `${p.id} (${truth || "lesion"})`;
      $("#phantom").appendChild(o);
    }
  } catch (e) { /* no phantoms: upload only */ }
  for (let i = 0; i < 600; i++) {
    const r = await api("/v1/model");
    if (r.ok) {
      const m = await r.json();
      $("#model").textContent = `model ${m.checkpoint} · sequences ${m.sequences.join(", ")} · ` +
        `grid ${m.image_size.join("×")} · ${m.device}`;
      $("#files-hint").textContent += ` — one file per sequence, in this order: ${m.sequences.join(", ")}`;
      $("#explain").disabled = !(m.explain_targets || []).includes("side");
      return;
    }
    $("#model").textContent = (await r.json()).error || "loading model…";
    await new Promise((ok) => setTimeout(ok, 1000));
  }
}

async function submit(ev) {
  ev.preventDefault();
  const form = new FormData();
  const files = $("#files").files;
  if (files.length) {
    for (const f of files) form.append("files", f, f.name);
  } else if ($("#phantom").value) {
    form.append("phantom", $("#phantom").value);
  } else {
    setStatus("choose a file or a demo phantom", true);
    return;
  }
  const params = new URLSearchParams({view: "true", mirror_check: $("#mirror").checked});
  const explain = $("#explain").checked;
  if (explain) params.set("explain", "side");
  $("#submit").disabled = true;
  setStatus(explain ? "writing the report; the explanation then waits in its own queue (3D LIME is slow)…"
                    : "writing the report…");
  const poll = explain ? setInterval(showExplainQueue, 1000) : null;
  const t0 = performance.now();
  try {
    const r = await api(`/v1/reports?${params}`, {method: "POST", body: form});
    const body = await r.json();
    if (!r.ok) {
      const retry = r.headers.get("Retry-After");
      setStatus(body.error + (retry ? ` (retry in ${retry} s)` : ""), true);
      return;
    }
    showRecord(body);
    setStatus(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const view = r.headers.get("Brain3D-View");
    if (view) await showView(view);
  } catch (e) {
    setStatus(`request failed: ${e}`, true);
  } finally {
    if (poll) clearInterval(poll);
    $("#queue-note").textContent = "";
    $("#submit").disabled = false;
  }
}

// while an explanation is pending: how full its lane is (GET /v1/health)
async function showExplainQueue() {
  try {
    const q = (await (await api("/v1/health")).json()).explain_queue;
    $("#queue-note").textContent = `explanation queued: ${q.length} of at most ${q.capacity} in the explanation ` +
      `queue, ${q.running} being computed`;
  } catch (e) { /* the report request says what went wrong */ }
}

function showRecord(rec) {
  $("#result").hidden = false;
  $("#report-id").textContent = `${rec.id} · stored ${rec.orientation} · ${rec.seconds} s`;
  $("#report").textContent = rec.report.trim();
  const f = rec.findings || {};
  const found = ["edema", "necrosis", "enhancement", "compression"].filter((k) => f[k]);
  const hidden = (f.not_assessable || []).map((n) => n.finding);
  const unsupported = rec.asserts_unassessable || [];
  $("#findings").textContent = (f.pathology
    ? `side: ${f.side || "not stated"} · lobes: ${(f.lobes || []).join(", ") || "none"} · ${found.join(", ") || "no further findings"}`
    : "no pathology asserted")
    + (hidden.length ? ` · not assessable on ${(rec.sequences || []).join(", ")}: ${hidden.join(", ")}` : "")
    + (unsupported.length ? ` · the text states ${unsupported.join(", ")}, which this input cannot show` : "");
  const mv = $("#mirror-verdict");
  if (rec.laterality_consistent === null || rec.laterality_consistent === undefined) {
    mv.textContent = "mirror check: not run";
    mv.className = "muted";
  } else if (rec.laterality_consistent) {
    mv.textContent = `mirror check: consistent (mirrored scan reported as ${rec.mirrored_side || "no side"})`;
    mv.className = "ok";
  } else {
    mv.textContent = `mirror check: INCONSISTENT — the side did not flip when the scan was mirrored ` +
      `(${f.side || "none"} → ${rec.mirrored_side || "none"}); check laterality`;
    mv.className = "warn";
  }
  const ex = rec.explanation;
  const el = $("#explanation");
  if (!ex) el.textContent = "";
  else if (ex.error) el.textContent = `explanation: ${ex.error}`;
  else {
    const top = (ex.top_supporting || []).slice(0, 3)
      .map((r) => `${r.side}${r.lobe ? " " + r.lobe : ""} (weight ${r.weight.toFixed(3)}, ${r.volume_ml.toFixed(1)} ml)`);
    el.textContent = `why "${ex.word}": strongest supporting regions ${top.join("; ") || "none"} ` +
      `(LIME fit R² ${ex.r2 === null ? "n/a" : ex.r2.toFixed(2)})`;
  }
}

function sliceUrl(plane, index) {
  const ov = $("#overlay").checked ? "true" : "false";
  return `${current.url}/${plane}/${index}.png?overlay=${ov}`;
}

async function showView(url) {
  const info = await (await api(url)).json();
  current = {url, info};
  $("#viewer").hidden = false;
  $("#overlay-toggle").hidden = !info.overlay;
  for (const plane of PLANES) {
    const fig = document.querySelector(`.plane[data-plane="${plane}"]`);
    const p = info.planes[plane];
    for (const edge of ["left", "right", "top", "bottom"]) fig.querySelector(`.lab.${edge}`).textContent = p.labels[edge];
    const slider = fig.querySelector(".slider");
    slider.max = p.size - 1;
    slider.value = info.centre[plane];
    fig.querySelector("output").textContent = slider.value;
    showImage(fig.querySelector("img"), sliceUrl(plane, slider.value));
  }
  await showNiivue(url, info);
}

function onSlide(ev) {
  if (!current || !ev.target.classList.contains("slider")) return;
  const fig = ev.target.closest(".plane");
  fig.querySelector("output").textContent = ev.target.value;
  showImage(fig.querySelector("img"), sliceUrl(fig.dataset.plane, ev.target.value));
}

function refreshSlices() {
  for (const fig of document.querySelectorAll(".plane")) {
    showImage(fig.querySelector("img"), sliceUrl(fig.dataset.plane, fig.querySelector(".slider").value));
  }
}

let nv = null;
async function showNiivue(url, info) {
  const note = $("#niivue-note");
  if (!window.niivue) {
    try {
      await new Promise((ok, fail) => {
        const s = document.createElement("script");
        s.src = "/static/vendor/niivue.umd.js";
        s.onload = ok;
        s.onerror = () => fail(new Error("NiiVue is not installed on this server"));
        document.head.appendChild(s);
      });
    } catch (e) {
      note.textContent = `Interactive viewer unavailable (${e.message}); the slices above are rendered by the server.`;
      return;
    }
  }
  if (!document.createElement("canvas").getContext("webgl2")) {
    note.textContent = "Interactive viewer unavailable (this browser has no WebGL2); the slices above are rendered by the server.";
    return;
  }
  try {
    $("#niivue-panel").hidden = false;
    if (!nv) {
      nv = new window.niivue.Niivue({show3Dcrosshair: true, isRadiologicalConvention: false, crosshairWidth: 0.5,
        crosshairColor: [1, 0.2, 0.2, 0.6]});
      await nv.attachTo("nv-canvas");
    }
    // fetched with the token and handed over as object URLs; the names tell NiiVue the format
    const vols = [{url: await objectUrl(`${url}/volume.nii.gz`), name: "scan.nii.gz", colormap: "gray"}];
    if (info.overlay) vols.push({url: await objectUrl(`${url}/overlay.nii.gz`), name: "lime.nii.gz", colormap: "warm",
      colormapNegative: "winter", cal_min: 0.05, cal_max: 1, opacity: 0.6});
    await nv.loadVolumes(vols);
    vols.forEach((v) => URL.revokeObjectURL(v.url));
    nv.setSliceType(nv.sliceTypeMultiplanar);
    note.textContent = "NiiVue: click to move the crosshair, scroll to change slices.";
    document.body.dataset.niivue = "ready";
  } catch (e) {
    $("#niivue-panel").hidden = true;
    note.textContent = `Interactive viewer failed (${e.message}); the slices above are rendered by the server.`;
  }
}

$("#scan-form").addEventListener("submit", submit);
document.addEventListener("input", onSlide);
$("#overlay").addEventListener("change", refreshSlices);
init();
