// The console page: live grid and single camera, alarms, history, system; zone editor in zones.js.
// It uses only the viewer's JSON API and its WebSocket (docs/console.md).
import { t, lang, setLang, translate } from "./i18n.js";
import { paint } from "./draw.js";
import { connectLive } from "./live.js";
import { renderZones } from "./zones.js";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmtTime = (ts) => (ts ? new Date(ts * 1000).toLocaleString(lang === "ko" ? "ko-KR" : "en-GB") : "-");

const ui = {
  cameras: [], broker: { online: false }, alarms: [], zones: {}, me: { user: "", auth: false },
  tiles: new Map(), single: null, view: "live", frames: new Map(), seenAlarms: new Set(),
};

async function api(path, options = {}) {
  const resp = await fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
  if (resp.status === 401) { location.href = "/login.html"; throw new Error("login required"); }
  const body = resp.headers.get("content-type")?.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) throw new Error(body.detail || resp.statusText);
  return body;
}

// ---- live grid -----------------------------------------------------------------------------------
function tileFor(camera) {
  let tile = ui.tiles.get(camera);
  if (!tile) {
    tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.camera = camera;
    tile.dataset.boxes = "0";
    tile.innerHTML = `<canvas></canvas><div class="caption"></div>`;
    tile.onclick = () => (location.hash = `#/live/${encodeURIComponent(camera)}`);
    ui.tiles.set(camera, tile);
    const grid = $("#grid");
    const after = [...grid.children].find((el) => el.dataset.camera > camera);
    grid.insertBefore(tile, after || null);
  }
  return tile;
}

function alarmStateOf(camera) {
  const mine = ui.alarms.filter((a) => a.camera === camera && a.state === "open");
  if (!mine.length) return "";
  return mine.some((a) => !a.ack) ? "open" : "acked";
}

function caption(tile, cam) {
  tile.dataset.state = cam.online ? "online" : "offline";
  tile.dataset.alarm = alarmStateOf(cam.camera);
  const lat = cam.latency_ms == null ? "-" : `${Math.round(cam.latency_ms)} ms`;
  $(".caption", tile).innerHTML =
    `<span class="cam">${esc(cam.camera)}</span>` +
    `<span class="state ${cam.online ? "online" : "offline"}">● ${t(cam.online ? "online" : "offline")}</span>` +
    `<span class="stat">${t("fps")} <b class="fps">${(cam.fps || 0).toFixed(1)}</b></span>` +
    `<span class="stat">${t("latency")} <b class="latency">${lat}</b></span>` +
    `<span class="stat">${t("people")} <b class="people">${cam.people}</b></span>`;
}

function renderCameras() {
  for (const cam of ui.cameras) caption(tileFor(cam.camera), cam);
  const single = ui.cameras.find((c) => c.camera === ui.single);
  if (single) caption($("#single-tile"), single);
  $("#no-cameras").hidden = ui.cameras.length > 0;
  const badge = $("#broker-state");
  badge.className = `badge ${ui.broker.online ? "ok" : "bad"}`;
  badge.textContent = ui.broker.online ? `${t("broker")} ${t("online")}` : t("brokerOffline");
}

function alarmZones(camera) {
  const hot = new Set();
  for (const a of ui.alarms) if (a.camera === camera && a.state === "open" && a.zone) hot.add(a.zone);
  return hot;
}

function onFrame(meta, bitmap) {
  ui.frames.set(meta.camera, meta);
  const cam = ui.zones[meta.camera];
  const tile = tileFor(meta.camera);
  tile.dataset.boxes = String(paint($("canvas", tile), bitmap, meta, cam, alarmZones(meta.camera)));
  tile.dataset.seq = String(meta.seq);
  // Frame age at paint (capture -> now), for the benchmark; only meaningful with synchronized clocks.
  tile.dataset.age = String(Date.now() / 1000 - meta.t_capture);
  // Every paint, for benchmarks/viewer.py: it defines window.__anjeonPaints = [] and drains it; unset, no cost.
  window.__anjeonPaints?.push({ camera: meta.camera, seq: meta.seq, t_capture: meta.t_capture, painted: Date.now() / 1000 });
  if (ui.single === meta.camera) {
    const big = $("#single-tile");
    big.dataset.boxes = String(paint($("canvas", big), bitmap, meta, cam, alarmZones(meta.camera)));
  }
}

// ---- alarms --------------------------------------------------------------------------------------
function beep() {
  if (!$("#sound").checked) return;
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    osc.frequency.value = 880;
    osc.connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.3);
  } catch (err) { /* no audio device: the list and the highlight still show it */ }
}

function renderAlarms() {
  const list = $("#alarm-list");
  list.innerHTML = "";
  let fresh = false;
  for (const a of ui.alarms) {
    if (!ui.seenAlarms.has(a.id)) { ui.seenAlarms.add(a.id); fresh = fresh || a.state === "open"; }
    const li = document.createElement("li");
    li.dataset.event = a.id;
    li.className = `${a.ack ? "acked" : ""} ${a.state === "ended" ? "ended" : ""}`;
    li.innerHTML =
      `<div><b>${esc(a.camera)}</b> · ${esc(a.rule)} <span class="badge">${t(a.state === "open" ? "open" : "ended")}</span></div>` +
      `<div class="meta">${fmtTime(a.started)} · ${t("people")} ${a.peak ?? a.count ?? ""}</div>` +
      (a.ack
        ? `<div class="meta ack">${t("acked")} <b>${esc(a.ack.by)}</b> · ${fmtTime(a.ack.at)}</div>`
        : `<button class="ack-button">${t("ack")}</button>`);
    const btn = $(".ack-button", li);
    if (btn) btn.onclick = () => acknowledge(a.id);
    list.appendChild(li);
  }
  $("#no-alarms").hidden = ui.alarms.length > 0;
  $("#alarm-count").textContent = ui.alarms.filter((a) => !a.ack).length || "";
  for (const cam of ui.cameras) caption(tileFor(cam.camera), cam);
  if (fresh) beep();
}

async function acknowledge(id) {
  const by = ui.me.user || $("#operator").value.trim() || "operator";
  await api(`/api/alarms/${encodeURIComponent(id)}/ack`, { method: "POST", body: JSON.stringify({ by }) });
}

// ---- history -------------------------------------------------------------------------------------
function historyQuery() {
  const form = new FormData($("#history-form"));
  const q = new URLSearchParams();
  for (const key of ["camera", "rule", "state"]) if (form.get(key)) q.set(key, form.get(key));
  for (const key of ["since", "until"]) if (form.get(key)) q.set(key, String(new Date(form.get(key)).getTime() / 1000));
  q.set("limit", "500");
  return q;
}

async function loadHistory() {
  const q = historyQuery();
  $("#csv").href = `/api/events.csv?${q}`;
  const body = $("#history-table tbody");
  try {
    const rows = await api(`/api/events?${q}`);
    $("#history-note").textContent = rows.length ? `${rows.length} ${t("events")}` : t("noEvents");
    body.innerHTML = rows.map((e) =>
      `<tr data-event="${esc(e.id)}"><td><img loading="lazy" alt="" src="/api/events/${encodeURIComponent(e.id)}/snapshot.jpg"></td>` +
      `<td>${fmtTime(e.started)}</td><td>${esc(e.camera)}</td><td>${esc(e.rule)}</td><td>${esc(e.type)}</td>` +
      `<td>${t(e.state === "open" ? "open" : "ended")}</td><td>${(e.duration || 0).toFixed(1)} s</td><td>${e.peak ?? ""}</td>` +
      `<td>${e.ack ? `${esc(e.ack.by)} · ${fmtTime(e.ack.at)}` : "-"}</td></tr>`).join("");
    for (const img of body.querySelectorAll("img")) {
      img.onerror = () => (img.style.visibility = "hidden");
      img.onclick = () => showImage(img.src);
    }
  } catch (err) {
    $("#history-note").textContent = `${t("historyError")}: ${err.message}`;
    body.innerHTML = "";
  }
}

function showImage(src) {
  const dlg = document.createElement("dialog");
  dlg.innerHTML = `<img src="${src}"><form method="dialog"><button>OK</button></form>`;
  dlg.onclose = () => dlg.remove();
  document.body.appendChild(dlg);
  dlg.showModal();
}

function fillCameraFilter() {
  const sel = $("#history-form select[name=camera]");
  const current = sel.value;
  sel.innerHTML = `<option value="">${t("all")}</option>` +
    ui.cameras.map((c) => `<option${c.camera === current ? " selected" : ""}>${esc(c.camera)}</option>`).join("");
}

// ---- system --------------------------------------------------------------------------------------
const table = (heads, rows) =>
  `<table class="table"><thead><tr>${heads.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>` +
  `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
const dropsText = (d) => {
  const parts = Object.entries(d || {}).filter(([, v]) => typeof v === "number" && v > 0).map(([k, v]) => `${esc(k)} ${v}`);
  return parts.join(", ") || "-";
};
const onlineText = (on) => `<span class="state ${on ? "online" : "offline"}">● ${t(on ? "online" : "offline")}</span>`;
const num = (v, digits = 1) => (typeof v === "number" ? v.toFixed(digits) : "-");

async function renderSystem() {
  const root = $("#view-system");
  let data;
  try { data = await api("/api/status"); } catch (err) { root.textContent = err.message; return; }
  const st = data.status || {};
  const cams = Object.entries(st.cameras || {});
  const cameraDrops = (c) => Object.entries(c.drops || {}).map(([stage, d]) => `${esc(stage)}: ${dropsText(d)}`).join("<br>");
  root.innerHTML =
    `<div class="cards">` +
    `<div class="card">${t("broker")}<b>${onlineText(data.broker_online)}</b>${esc(st.broker || "")}</div>` +
    `<div class="card">${t("uptime")}<b>${Math.round(st.uptime || 0)} s</b></div>` +
    `<div class="card">${t("pending")}<b>${st.pending ?? "-"}</b></div>` +
    `<div class="card">${t("cpu")}<b>${num(st.process?.cpu, 0)} %</b></div>` +
    `<div class="card">${t("drops")}<b style="font-size:13px">${dropsText(st.drops)}</b></div></div>` +
    `<h3>${t("workers")}</h3>` +
    table([t("name"), t("state"), t("model"), t("device"), t("fps"), t("batch"), "infer ms", t("credit"), t("cpu"), t("drops")],
      Object.values(st.workers || {}).map((w) => [esc(w.name), onlineText(w.online), esc(w.model), esc(w.device), num(w.fps),
        num(w.batch_mean), num(w.infer_ms, 0), `${w.credit ?? "-"}/${w.capacity ?? "-"}`, `${num(w.process?.cpu, 0)} %`, dropsText(w.drops)])) +
    `<h3>${t("edges")}</h3>` +
    table([t("name"), t("state"), t("cameras"), t("cpu")],
      Object.values(st.edges || {}).map((e) => [esc(e.name), onlineText(e.online), esc((e.cameras || []).join(", ")), `${num(e.process?.cpu, 0)} %`])) +
    `<h3>${t("cameras")}</h3>` +
    table([t("camera"), t("state"), t("source"), "fps in", "fps out", t("frames"), t("drops")],
      cams.map(([id, c]) => [esc(id), `${onlineText(c.online)} ${esc(c.state)}${c.error ? ` <span class="error">${esc(c.error)}</span>` : ""}`,
        esc(c.source || ""), num(c.fps_in), num(c.fps_out), `${c.frames_in ?? 0} / ${c.results_out ?? 0}`, cameraDrops(c)])) +
    `<h3>${t("subscribers")}</h3>` +
    table([t("name"), t("role"), t("state"), t("cpu"), t("drops")],
      Object.values(st.subscribers || {}).map((s) => [esc(s.name), esc(s.role), onlineText(s.online), `${num(s.process?.cpu, 0)} %`, dropsText(s.drops)]));
}

// ---- views and start -----------------------------------------------------------------------------
function route() {
  const [, view = "live", arg] = location.hash.split("/");
  ui.view = ["live", "history", "system", "zones"].includes(view) ? view : "live";
  for (const v of ["live", "history", "system", "zones"]) $(`#view-${v}`).hidden = v !== ui.view;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === ui.view);
  ui.single = ui.view === "live" && arg ? decodeURIComponent(arg) : null;
  $("#single").hidden = !ui.single;
  $("#grid").hidden = !!ui.single;
  if (ui.single) $("#single-tile").dataset.camera = ui.single;
  live.watch(ui.view === "live" ? (ui.single ? [ui.single] : null) : []); // off-screen views take no frames
  if (ui.view === "history") { fillCameraFilter(); loadHistory(); }
  if (ui.view === "system") renderSystem();
  if (ui.view === "zones") renderZones($("#view-zones"), ui, api, loadZones);
  renderCameras();
}

async function loadZones() {
  try { ui.zones = (await api("/api/zones")).cameras || {}; } catch (err) { ui.zones = {}; }
}

function applyLanguage() {
  $("#lang").textContent = lang === "ko" ? "English" : "한국어";
  translate();
  renderCameras();
  renderAlarms();
  if (ui.view === "history") { fillCameraFilter(); loadHistory(); }
  if (ui.view === "system") renderSystem();
  if (ui.view === "zones") renderZones($("#view-zones"), ui, api, loadZones);
}

const live = connectLive({
  onFrame,
  onCameras: (msg) => { ui.cameras = msg.cameras; ui.broker = msg.broker; renderCameras(); },
  onAlarms: (alarms) => { ui.alarms = alarms; renderAlarms(); },
  onState: (up) => document.body.classList.toggle("disconnected", !up),
});

async function start() {
  translate();
  $("#lang").textContent = lang === "ko" ? "English" : "한국어";
  $("#lang").onclick = () => { setLang(lang === "ko" ? "en" : "ko"); applyLanguage(); };
  $("#operator").value = localStorage.getItem("anjeon.operator") || "";
  $("#operator").onchange = () => localStorage.setItem("anjeon.operator", $("#operator").value.trim());
  $("#back").onclick = () => (location.hash = "#/live");
  $("#history-form").onsubmit = (ev) => { ev.preventDefault(); loadHistory(); };
  $("#logout").onclick = async () => { await api("/api/logout", { method: "POST" }); location.href = "/login.html"; };
  ui.me = await api("/api/me");
  if (ui.me.auth) { $("#logout").hidden = false; $(".operator").hidden = true; }
  await loadZones();
  window.addEventListener("hashchange", route);
  route();
  setInterval(() => { if (ui.view === "system") renderSystem(); }, 1000);
}

start();
