// The console page: live grid (paged, camera list with search and health filter) and single camera, alarms,
// history (paged), system; zone editor in zones.js. It uses only the viewer's JSON API and its WebSocket
// (docs/console.md). Every value from the server is put on the page as text through dom.js.
import { t, lang, setLang, translate } from "./i18n.js";
import { paint, describe } from "./draw.js";
import { connectLive } from "./live.js";
import { renderZones } from "./zones.js";
import { openEvent, storageCard } from "./evidence.js";
import { renderReports } from "./reports.js";
import { h, fill, num, int } from "./dom.js";

const $ = (sel, root = document) => root.querySelector(sel);
const fmtTime = (ts) =>
  typeof ts === "number" ? new Date(ts * 1000).toLocaleString(lang === "ko" ? "ko-KR" : "en-GB") : num(ts);
const HISTORY_PAGE = 50;

const ui = {
  cameras: [], broker: { online: false }, alarms: [], zones: {}, me: { user: "", auth: false },
  tiles: new Map(), single: null, view: "live", frames: new Map(), seenAlarms: new Set(), bitmaps: new Map(),
  page: 0, pageSize: Number(localStorage.getItem("anjeon.pageSize")) || 16, search: "", health: "all",
  onPage: [], history: { cursors: [""], index: 0 },
};

async function api(path, options = {}) {
  const resp = await fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
  if (resp.status === 401) { location.href = "/login.html"; throw new Error("login required"); }
  const body = resp.headers.get("content-type")?.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) throw new Error(typeof body.detail === "string" ? body.detail : resp.statusText);
  return body;
}

// ---- which cameras are on screen -------------------------------------------------------------------
function alarmStateOf(camera) {
  const mine = ui.alarms.filter((a) => a.camera === camera && a.state === "open");
  if (!mine.length) return "";
  return mine.some((a) => !a.ack) ? "open" : "acked";
}

function matches(cam) {
  if (ui.search && !cam.camera.toLowerCase().includes(ui.search.toLowerCase())) return false;
  if (ui.health === "online") return cam.online;
  if (ui.health === "offline") return !cam.online;
  if (ui.health === "alarm") return alarmStateOf(cam.camera) !== "";
  return true;
}

function pageCount(n) { return Math.max(1, Math.ceil(n / ui.pageSize)); }

// The filtered cameras of the current page; the server is told to send pictures of these only.
function computePage() {
  const shown = ui.cameras.filter(matches);
  ui.page = Math.min(ui.page, pageCount(shown.length) - 1);
  const onPage = shown.slice(ui.page * ui.pageSize, (ui.page + 1) * ui.pageSize).map((c) => c.camera);
  const changed = onPage.join("\n") !== ui.onPage.join("\n");
  ui.onPage = onPage;
  return { shown, changed };
}

function sendWatch() {
  const cams = ui.view !== "live" ? [] : ui.single ? [ui.single] : ui.onPage;
  live.watch(cams); // off-screen cameras: metadata only (the camera list), no pictures
}

// ---- live grid -----------------------------------------------------------------------------------
function makeTile(camera) {
  const tile = h("div", { className: "tile", dataset: { camera, boxes: "0" },
    onclick: () => (location.hash = `#/live/${encodeURIComponent(camera)}`) },
  h("canvas", { role: "img" }), h("div", { className: "caption" }));
  ui.tiles.set(camera, tile);
  return tile;
}

function caption(tile, cam) {
  tile.dataset.state = cam.online ? "online" : "offline";
  tile.dataset.alarm = alarmStateOf(cam.camera);
  const lat = cam.latency_ms == null ? "-" : `${int(cam.latency_ms)} ms`;
  fill($(".caption", tile),
    h("span", { className: "cam" }, cam.camera),
    h("span", { className: `state ${cam.online ? "online" : "offline"}` }, `● ${t(cam.online ? "online" : "offline")}`),
    h("span", { className: "stat" }, `${t("fps")} `, h("b", { className: "fps" }, num(cam.fps || 0))),
    h("span", { className: "stat" }, `${t("latency")} `, h("b", { className: "latency" }, lat)),
    h("span", { className: "stat" }, `${t("people")} `, h("b", { className: "people" }, int(cam.people))));
}

function renderGrid() {
  const { shown, changed } = computePage();
  const grid = $("#grid");
  if (changed || grid.children.length !== ui.onPage.length) {
    for (const cam of [...ui.tiles.keys()]) if (!ui.onPage.includes(cam)) ui.tiles.delete(cam);
    fill(grid, ui.onPage.map((c) => ui.tiles.get(c) || makeTile(c)));
    // Columns for a square-ish page; a page with few cameras gets bigger tiles.
    grid.style.setProperty("--cols", String(Math.max(1, Math.ceil(Math.sqrt(Math.min(ui.pageSize, ui.onPage.length))))));
    sendWatch();
  }
  const byId = new Map(ui.cameras.map((c) => [c.camera, c]));
  for (const cam of ui.onPage) caption(ui.tiles.get(cam), byId.get(cam));
  const pages = pageCount(shown.length);
  $("#page-info").textContent = `${t("page")} ${ui.page + 1} / ${pages} · ${shown.length} ${t("camerasShort")}`;
  $("#page-prev").disabled = ui.page === 0;
  $("#page-next").disabled = ui.page >= pages - 1;
  $("#pager").hidden = !!ui.single;
  $("#no-cameras").hidden = ui.cameras.length > 0;
}

function renderCamList() {
  const online = ui.cameras.filter((c) => c.online).length;
  $("#cam-summary").textContent =
    `${ui.cameras.length} ${t("camerasShort")} · ${online} ${t("online")} · ${ui.cameras.length - online} ${t("offline")}`;
  fill($("#cam-items"), ui.cameras.filter(matches).map((c) => {
    const alarm = alarmStateOf(c.camera);
    return h("li", { dataset: { camera: c.camera, state: c.online ? "online" : "offline", alarm },
      className: ui.onPage.includes(c.camera) ? "on-page" : "",
      onclick: () => (location.hash = `#/live/${encodeURIComponent(c.camera)}`) },
    h("span", { className: `state ${c.online ? "online" : "offline"}` }, "●"), " ", h("span", { className: "name" }, c.camera),
    alarm ? h("span", { className: `badge alarm-${alarm}` }, t("alarm")) : null,
    c.error ? h("span", { className: "error", title: c.error }, " !") : null);
  }));
}

function renderCameras() {
  renderGrid();
  renderCamList();
  const single = ui.cameras.find((c) => c.camera === ui.single);
  if (single) caption($("#single-tile"), single);
  const badge = $("#broker-state");
  badge.className = `badge ${ui.broker.online ? "ok" : "bad"}`;
  badge.textContent = ui.broker.online ? `${t("broker")} ${t("online")}` : t("brokerOffline");
}

function alarmZones(camera) {
  const hot = new Set();
  for (const a of ui.alarms) if (a.camera === camera && a.state === "open" && a.zone) hot.add(a.zone);
  return hot;
}

// The newest picture of each camera on screen stays as a bitmap: when the safety service's tracks for it
// arrive (after the picture), it is drawn again with them.
function keepBitmap(meta, bitmap) {
  const old = ui.bitmaps.get(meta.camera);
  if (old && old.bitmap !== bitmap) old.bitmap.close();
  const onScreen = ui.onPage.includes(meta.camera) || ui.single === meta.camera;
  if (onScreen) ui.bitmaps.set(meta.camera, { meta, bitmap });
  else { ui.bitmaps.delete(meta.camera); bitmap.close(); }
}

function onTracks(msg) {
  const kept = ui.bitmaps.get(msg.camera);
  if (!kept || kept.meta.run !== msg.run || kept.meta.seq !== msg.seq) return; // a newer frame is shown already
  onFrame({ ...kept.meta, tracks: msg.tracks }, kept.bitmap, true);
}

function onFrame(meta, bitmap, redraw = false) {
  ui.frames.set(meta.camera, meta);
  const cam = ui.zones[meta.camera];
  const tile = ui.tiles.get(meta.camera);
  if (tile) {
    const canvas = $("canvas", tile);
    tile.dataset.boxes = String(paint(canvas, bitmap, meta, cam, alarmZones(meta.camera)));
    tile.dataset.seq = String(meta.seq);
    tile.dataset.tracks = meta.tracks ? "1" : "0";
    canvas.setAttribute("aria-label", describe(meta));
    // Frame age at paint (capture -> now), for the benchmark; only meaningful with synchronized clocks.
    tile.dataset.age = String(Date.now() / 1000 - meta.t_capture);
  }
  // Every paint, for benchmarks/viewer.py: it defines window.__anjeonPaints = [] and drains it; unset, no cost.
  if (!redraw) window.__anjeonPaints?.push({ camera: meta.camera, seq: meta.seq, t_capture: meta.t_capture, painted: Date.now() / 1000 });
  if (ui.single === meta.camera) {
    const big = $("#single-tile");
    const canvas = $("canvas", big);
    big.dataset.boxes = String(paint(canvas, bitmap, meta, cam, alarmZones(meta.camera)));
    big.dataset.tracks = meta.tracks ? "1" : "0";
    big.dataset.seq = String(meta.seq);
    canvas.setAttribute("aria-label", describe(meta));
    $(".details", big).textContent = `${t("worker")} ${meta.worker} · ${t("model")} ${meta.model} · ${describe(meta)}`;
  }
  keepBitmap(meta, bitmap);
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

function alarmItem(a) {
  return h("li", { dataset: { event: a.id, camera: a.camera }, className: `${a.ack ? "acked" : ""} ${a.state === "ended" ? "ended" : ""}` },
    h("div", { className: "head", onclick: () => (location.hash = `#/live/${encodeURIComponent(a.camera)}`) },
      h("b", { className: "camera" }, a.camera), " · ", h("span", { className: "rule" }, a.rule), " ",
      h("span", { className: "badge" }, t(a.state === "open" ? "open" : "ended")),
      a.severity && a.severity !== "warning" ? h("span", { className: `badge sev-${a.severity === "critical" ? "critical" : "info"}` }, a.severity) : null),
    h("div", { className: "meta" }, fmtTime(a.started), ` · ${t("people")} `, h("span", { className: "peak" }, num(a.peak ?? a.count, 0)),
      a.zone ? [" · ", h("span", { className: "zone" }, a.zone)] : null),
    a.ack
      ? h("div", { className: "meta ack" }, `${t("acked")} `, h("b", {}, a.ack.by), ` · ${fmtTime(a.ack.at)}`)
      : h("button", { className: "ack-button", onclick: () => acknowledge(a.id) }, t("ack")),
    h("button", { className: "event-button", title: "clip", onclick: () => openEvent(a, drawer()) }, "▶"));
}

// The event drawer (evidence.js): clip, snapshot, acknowledge / resolved / false alarm.
const drawer = () => ({ api, who: () => ui.me.user || $("#operator").value.trim() || "operator" });

function renderAlarms() {
  let fresh = false;
  for (const a of ui.alarms) {
    if (!ui.seenAlarms.has(a.id)) { ui.seenAlarms.add(a.id); fresh = fresh || a.state === "open"; }
  }
  if (ui.seenAlarms.size > 5000) ui.seenAlarms = new Set(ui.alarms.map((a) => a.id));
  fill($("#alarm-list"), ui.alarms.map(alarmItem));
  $("#no-alarms").hidden = ui.alarms.length > 0;
  $("#alarm-count").textContent = ui.alarms.filter((a) => !a.ack).length || "";
  renderCameras();
  if (fresh) beep();
}

async function acknowledge(id) {
  const by = ui.me.user || $("#operator").value.trim() || "operator";
  await api(`/api/alarms/${encodeURIComponent(id)}/ack`, { method: "POST", body: JSON.stringify({ by }) });
}

// ---- history (paged: newest first, a cursor per page) ----------------------------------------------
function historyFilters() {
  const form = new FormData($("#history-form"));
  const q = new URLSearchParams();
  for (const key of ["camera", "rule", "state"]) if (form.get(key)) q.set(key, form.get(key));
  for (const key of ["since", "until"]) if (form.get(key)) q.set(key, String(new Date(form.get(key)).getTime() / 1000));
  return q;
}

function historyRow(e) {
  const img = h("img", { loading: "lazy", alt: "", src: `/api/events/${encodeURIComponent(e.id)}/snapshot.jpg` });
  img.addEventListener("error", () => (img.style.visibility = "hidden"));
  img.addEventListener("click", () => showImage(img.src));
  const duration = typeof e.duration === "number" ? `${e.duration.toFixed(1)} s` : num(e.duration);
  return h("tr", { dataset: { event: e.id }, onclick: (ev) => ev.target !== img && openEvent(e, drawer()) },
    h("td", {}, img), h("td", {}, fmtTime(e.started)),
    h("td", {}, e.camera), h("td", {}, e.rule), h("td", {}, e.type), h("td", {}, t(e.state === "open" ? "open" : "ended")),
    h("td", {}, duration), h("td", {}, num(e.peak, 0)), h("td", {}, e.ack ? `${e.ack.by} · ${fmtTime(e.ack.at)}` : "-"));
}

async function loadHistory(reset = true) {
  const hs = ui.history;
  if (reset) { hs.cursors = [""]; hs.index = 0; }
  const q = historyFilters();
  $("#csv").href = `/api/events.csv?${q}`;
  q.set("limit", String(HISTORY_PAGE));
  if (hs.cursors[hs.index]) q.set("cursor", hs.cursors[hs.index]);
  if (hs.index === 0) q.set("total", "true");
  const body = $("#history-table tbody");
  try {
    const page = await api(`/api/events/page?${q}`);
    hs.cursors[hs.index + 1] = page.next || null;
    hs.cursors.length = hs.index + 2;
    if (typeof page.total === "number") hs.total = page.total;
    else if (hs.index === 0) hs.total = null;
    const from = hs.index * HISTORY_PAGE + 1;
    const range = page.events.length ? `${from}-${from + page.events.length - 1}` : "";
    const total = typeof hs.total === "number" ? ` / ${hs.total}` : "";
    $("#history-note").textContent = page.events.length
      ? `${range}${total} ${t("events")} · ${t("page")} ${hs.index + 1}` : t("noEvents");
    fill(body, page.events.map(historyRow));
  } catch (err) {
    $("#history-note").textContent = `${t("historyError")}: ${err.message}`;
    fill(body);
    hs.cursors.length = hs.index + 1;
  }
  $("#history-newer").disabled = hs.index === 0;
  $("#history-older").disabled = !hs.cursors[hs.index + 1];
}

function showImage(src) {
  const dlg = h("dialog", {}, h("img", { src }), h("form", { method: "dialog" }, h("button", {}, "OK")));
  dlg.addEventListener("close", () => dlg.remove());
  document.body.appendChild(dlg);
  dlg.showModal();
}

function fillCameraFilter() {
  const sel = $("#history-form select[name=camera]");
  const current = sel.value;
  fill(sel, h("option", { value: "" }, t("all")),
    ui.cameras.map((c) => h("option", { value: c.camera, selected: c.camera === current }, c.camera)));
}

// ---- system --------------------------------------------------------------------------------------
const table = (heads, rows) =>
  h("table", { className: "table" }, h("thead", {}, h("tr", {}, heads.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
const dropsText = (d) => {
  const parts = Object.entries(d && typeof d === "object" ? d : {}).filter(([, v]) => v !== 0).map(([k, v]) => `${k} ${num(v, 0)}`);
  return parts.join(", ") || "-";
};
const onlineText = (on) => h("span", { className: `state ${on === true ? "online" : "offline"}` }, `● ${t(on === true ? "online" : "offline")}`);
const values = (m) => Object.values(m && typeof m === "object" ? m : {}).filter((v) => v && typeof v === "object");
const list = (v) => (Array.isArray(v) ? v.map(String).join(", ") : num(v));

async function renderSystem() {
  const root = $("#view-system");
  let data;
  try { data = await api("/api/status"); } catch (err) { root.textContent = err.message; return; }
  const storage = await storageCard(api); // evidence.js: storage used, days covered, write failures
  const st = data.status || {};
  const cams = Object.entries(st.cameras && typeof st.cameras === "object" ? st.cameras : {});
  const cameraDrops = (c) => Object.entries(c.drops && typeof c.drops === "object" ? c.drops : {})
    .map(([stage, d]) => h("div", {}, `${stage}: ${dropsText(d)}`));
  const viewerDrops = dropsText(data.viewer?.drops);
  fill(root,
    h("div", { className: "cards" },
      h("div", { className: "card" }, t("broker"), h("b", {}, onlineText(data.broker_online)), num(st.broker ?? "")),
      h("div", { className: "card" }, t("uptime"), h("b", {}, `${int(st.uptime || 0)} s`)),
      h("div", { className: "card" }, t("pending"), h("b", {}, num(st.pending, 0))),
      h("div", { className: "card" }, t("cpu"), h("b", {}, `${num(st.process?.cpu, 0)} %`)),
      h("div", { className: "card" }, t("drops"), h("b", { className: "small" }, dropsText(st.drops))),
      h("div", { className: "card" }, t("viewerDrops"), h("b", { className: "small", id: "viewer-drops" }, viewerDrops)), storage),
    h("h3", {}, t("workers")),
    table([t("name"), t("state"), t("model"), t("device"), t("fps"), t("batch"), "infer ms", t("credit"), t("cpu"), t("drops")],
      values(st.workers).map((w) => [num(w.name), onlineText(w.online), num(w.model), num(w.device), num(w.fps),
        num(w.batch_mean), num(w.infer_ms, 0), `${num(w.credit, 0)}/${num(w.capacity, 0)}`, `${num(w.process?.cpu, 0)} %`, dropsText(w.drops)])),
    h("h3", {}, t("edges")),
    table([t("name"), t("state"), t("cameras"), t("cpu")],
      values(st.edges).map((e) => [num(e.name), onlineText(e.online), list(e.cameras), `${num(e.process?.cpu, 0)} %`])),
    h("h3", {}, t("cameras")),
    table([t("camera"), t("state"), t("source"), "fps in", "fps out", t("frames"), t("drops")],
      cams.map(([id, c]) => [id, [onlineText(c.online), " ", num(c.state ?? ""), c.error ? h("span", { className: "error" }, " ", num(c.error)) : null],
        num(c.source ?? ""), num(c.fps_in), num(c.fps_out), `${num(c.frames_in ?? 0, 0)} / ${num(c.results_out ?? 0, 0)}`, cameraDrops(c)])),
    h("h3", {}, t("subscribers")),
    table([t("name"), t("role"), t("state"), t("cpu"), t("drops")],
      values(st.subscribers).map((s) => [num(s.name), num(s.role), onlineText(s.online), `${num(s.process?.cpu, 0)} %`, dropsText(s.drops)])));
}

// ---- views and start -----------------------------------------------------------------------------
// Views are the nav links' data-view names: a page added later (a nav link, a section view-NAME and a
// module listening for "anjeon:view") needs no change here.
function views() { return [...document.querySelectorAll("nav a[data-view]")].map((a) => a.dataset.view); }

function route() {
  const [, view = "live", arg] = location.hash.split("/");
  ui.view = views().includes(view) ? view : "live";
  for (const v of views()) { const sec = $(`#view-${v}`); if (sec) sec.hidden = v !== ui.view; }
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === ui.view);
  ui.single = ui.view === "live" && arg ? decodeURIComponent(arg) : null;
  $("#single").hidden = !ui.single;
  $("#grid").hidden = !!ui.single;
  if (ui.single) $("#single-tile").dataset.camera = ui.single;
  if (ui.view === "history") { fillCameraFilter(); loadHistory(); }
  if (ui.view === "system") renderSystem();
  if (ui.view === "zones") renderZones($("#view-zones"), ui, api, loadZones);
  if (ui.view === "reports") renderReports($("#view-reports"), api);
  renderCameras();
  sendWatch();
  document.dispatchEvent(new CustomEvent("anjeon:view", { detail: { view: ui.view, arg, api } }));
}

async function loadZones() {
  try { ui.zones = (await api("/api/zones")).cameras || {}; } catch (err) { ui.zones = {}; }
}

function applyLanguage() {
  $("#lang").textContent = lang === "ko" ? "English" : "한국어";
  translate();
  renderAlarms();
  if (ui.view === "history") { fillCameraFilter(); loadHistory(false); }
  if (ui.view === "system") renderSystem();
  if (ui.view === "zones") renderZones($("#view-zones"), ui, api, loadZones);
}

const live = connectLive({
  onFrame,
  onCameras: (msg) => { ui.cameras = msg.cameras; ui.broker = msg.broker; renderCameras(); },
  onAlarms: (alarms) => { ui.alarms = alarms; renderAlarms(); },
  onTracks,
  onState: (up) => document.body.classList.toggle("disconnected", !up),
});

function setPage(page) { ui.page = Math.max(0, page); renderCameras(); }

async function start() {
  translate();
  $("#lang").textContent = lang === "ko" ? "English" : "한국어";
  $("#lang").onclick = () => { setLang(lang === "ko" ? "en" : "ko"); applyLanguage(); };
  $("#operator").value = localStorage.getItem("anjeon.operator") || "";
  $("#operator").onchange = () => localStorage.setItem("anjeon.operator", $("#operator").value.trim());
  $("#back").onclick = () => (location.hash = "#/live");
  $("#history-form").onsubmit = (ev) => { ev.preventDefault(); loadHistory(); };
  $("#history-older").onclick = () => { ui.history.index += 1; loadHistory(false); };
  $("#history-newer").onclick = () => { ui.history.index = Math.max(0, ui.history.index - 1); loadHistory(false); };
  $("#cam-search").oninput = (ev) => { ui.search = ev.target.value.trim(); ui.page = 0; renderCameras(); };
  $("#cam-health").onchange = (ev) => { ui.health = ev.target.value; ui.page = 0; renderCameras(); };
  $("#page-prev").onclick = () => setPage(ui.page - 1);
  $("#page-next").onclick = () => setPage(ui.page + 1);
  $("#page-size").value = String(ui.pageSize);
  $("#page-size").onchange = (ev) => {
    ui.pageSize = Number(ev.target.value) || 16;
    localStorage.setItem("anjeon.pageSize", String(ui.pageSize));
    ui.page = 0;
    renderCameras();
  };
  $("#logout").onclick = async () => { await api("/api/logout", { method: "POST" }); location.href = "/login.html"; };
  ui.me = await api("/api/me");
  if (ui.me.auth) { $("#logout").hidden = false; $(".operator").hidden = true; }
  await loadZones();
  window.addEventListener("hashchange", route);
  route();
  setInterval(() => { if (ui.view === "system") renderSystem(); }, 1000);
}

start();
