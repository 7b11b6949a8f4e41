// Zone editor: draw and edit zone polygons and lines on a live frame, attach rules, save to the site YAML.
import { t } from "./i18n.js";
import { drawOverlay } from "./draw.js";

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const RULE_TYPES = ["intrusion", "dwell", "crowding", "line_crossing", "fall", "helmet"];

export async function renderZones(root, ui, api, reload) {
  const cameras = ui.cameras.map((c) => c.camera);
  const data = await api("/api/zones");
  if (!data.editable) { root.innerHTML = `<p class="muted">${t("notEditable")}</p>`; return; }
  const camera = root.dataset.camera && cameras.includes(root.dataset.camera) ? root.dataset.camera : cameras[0];
  if (!camera) { root.innerHTML = `<p class="muted">${t("noCameras")}</p>`; return; }
  root.dataset.camera = camera;
  const edit = structuredClone(data.cameras[camera] || { zones: {}, lines: {}, rules: [] });
  edit.rules = edit.rules.map((r) => ({ type: r.type, name: r.name, zone: r.zone, line: r.line, min_duration: r.min_duration }));
  let drawing = null; // {kind: "zone"|"line", name, points}
  root.innerHTML =
    `<h3>${t("zoneEditor")}</h3><div class="zone-editor"><div><canvas id="zcanvas"></canvas><p class="muted">${t("clickPoints")}</p></div>` +
    `<div class="panel"><div><select id="zcam">${cameras.map((c) => `<option${c === camera ? " selected" : ""}>${esc(c)}</option>`).join("")}</select> ` +
    `<button id="zreload">${t("reload")}</button></div>` +
    `<div><input id="zname" size="12" value="zone${Object.keys(edit.zones).length + 1}"> <button id="znew">${t("newZone")}</button> ` +
    `<button id="lnew">${t("newLine")}</button> <button id="zfinish">${t("finish")}</button></div>` +
    `<div id="zitems"></div><h3>${t("rule")}</h3><div id="zrules"></div><button id="zaddrule">${t("addRule")}</button> ` +
    `<button id="zsave">${t("save")}</button><p id="zmsg" class="muted"></p></div></div>`;
  const canvas = root.querySelector("#zcanvas");
  const img = new Image();
  const redraw = () => {
    if (!img.naturalWidth) return;
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const shown = structuredClone(edit);
    if (drawing && drawing.points.length) {
      if (drawing.kind === "zone") shown.zones[drawing.name] = drawing.points;
      else if (drawing.points.length === 2) shown.lines[drawing.name] = { points: drawing.points, restricted: "right" };
    }
    drawOverlay(ctx, canvas.width, canvas.height, null, shown, null);
    if (drawing) for (const [x, y] of drawing.points) { ctx.fillStyle = "#fff"; ctx.fillRect(x * canvas.width - 4, y * canvas.height - 4, 8, 8); }
  };
  img.onload = redraw;
  const loadFrame = () => (img.src = `/api/cameras/${encodeURIComponent(camera)}/frame.jpg?t=${Date.now()}`);
  loadFrame();
  const finish = () => {
    if (drawing?.kind === "zone" && drawing.points.length >= 3) edit.zones[drawing.name] = drawing.points;
    if (drawing?.kind === "line" && drawing.points.length === 2) edit.lines[drawing.name] = { points: drawing.points, restricted: "right" };
    drawing = null; items(); rules(); redraw();
  };
  canvas.onclick = (ev) => {
    if (!drawing) return;
    const r = canvas.getBoundingClientRect();
    drawing.points.push([(ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height]);
    if (drawing.kind === "line" && drawing.points.length === 2) finish(); else redraw();
  };
  const items = () => {
    const box = root.querySelector("#zitems");
    box.innerHTML = [...Object.keys(edit.zones).map((n) => ["zones", n]), ...Object.keys(edit.lines).map((n) => ["lines", n])]
      .map(([k, n]) => `<div>${t(k === "zones" ? "zone" : "line")} <b>${esc(n)}</b> <button data-kind="${k}" data-name="${esc(n)}">${t("remove")}</button></div>`).join("");
    for (const b of box.querySelectorAll("button")) b.onclick = () => { delete edit[b.dataset.kind][b.dataset.name]; items(); rules(); redraw(); };
  };
  const rules = () => {
    const box = root.querySelector("#zrules");
    const zoneOpts = ["", ...Object.keys(edit.zones)], lineOpts = ["", ...Object.keys(edit.lines)];
    const opts = (list, v) => list.map((o) => `<option${o === v ? " selected" : ""}>${esc(o)}</option>`).join("");
    box.innerHTML = edit.rules.map((r, i) =>
      `<div data-i="${i}"><select data-f="type">${opts(RULE_TYPES, r.type)}</select> <select data-f="zone">${opts(zoneOpts, r.zone)}</select> ` +
      `<select data-f="line">${opts(lineOpts, r.line)}</select> <input data-f="min_duration" size="3" value="${r.min_duration ?? ""}" title="${t("minDuration")}"> ` +
      `<button data-del="${i}">✕</button></div>`).join("");
    for (const el of box.querySelectorAll("[data-f]")) el.onchange = () => {
      const r = edit.rules[Number(el.parentElement.dataset.i)];
      r[el.dataset.f] = el.dataset.f === "min_duration" ? (el.value === "" ? null : Number(el.value)) : el.value;
    };
    for (const b of box.querySelectorAll("[data-del]")) b.onclick = () => { edit.rules.splice(Number(b.dataset.del), 1); rules(); };
  };
  root.querySelector("#zcam").onchange = (ev) => { root.dataset.camera = ev.target.value; renderZones(root, ui, api, reload); };
  root.querySelector("#zreload").onclick = loadFrame;
  root.querySelector("#znew").onclick = () => { drawing = { kind: "zone", name: root.querySelector("#zname").value.trim(), points: [] }; };
  root.querySelector("#lnew").onclick = () => { drawing = { kind: "line", name: root.querySelector("#zname").value.trim(), points: [] }; };
  root.querySelector("#zfinish").onclick = finish;
  root.querySelector("#zaddrule").onclick = () => {
    edit.rules.push({ type: "intrusion", name: "", zone: Object.keys(edit.zones)[0] || "", line: "", min_duration: 1 }); rules();
  };
  root.querySelector("#zsave").onclick = async () => {
    const msg = root.querySelector("#zmsg");
    const body = { zones: edit.zones, lines: edit.lines,
      rules: edit.rules.map((r) => Object.fromEntries(Object.entries(r).filter(([k, v]) => v !== "" && v !== null && !(k === "name" && !v)))) };
    try {
      await api(`/api/zones/${encodeURIComponent(camera)}`, { method: "PUT", body: JSON.stringify(body) });
      msg.className = "muted"; msg.textContent = t("saved");
      await reload();
    } catch (err) { msg.className = "error"; msg.textContent = err.message; }
  };
  items(); rules();
}
