// Zone editor: draw and edit zone polygons and lines on a live frame, attach rules, save to the site YAML.
// Each rule is kept as the file has it (every key: severity, hours, cooldown, end_after ...); the editor
// changes only the fields it shows and sends the rest back untouched, with the rule's _index so the server
// updates that entry in place (comments kept). Everything is put on the page with dom.js (text, never markup).
import { t } from "./i18n.js";
import { drawOverlay } from "./draw.js";
import { h, fill } from "./dom.js";

const RULE_TYPES = ["intrusion", "dwell", "crowding", "line_crossing", "fall", "helmet"];
const SEVERITIES = ["info", "warning", "critical"];
const NUMBER_FIELDS = new Set(["min_duration", "max_people"]);

function select(field, options, value) {
  return h("select", { dataset: { f: field } }, options.map((o) => h("option", { value: o, selected: o === (value ?? "") }, o)));
}

export async function renderZones(root, ui, api, reload) {
  const cameras = ui.cameras.map((c) => c.camera);
  const data = await api("/api/zones");
  if (!data.editable) { fill(root, h("p", { className: "muted" }, t("notEditable"))); return; }
  const camera = root.dataset.camera && cameras.includes(root.dataset.camera) ? root.dataset.camera : cameras[0];
  if (!camera) { fill(root, h("p", { className: "muted" }, t("noCameras"))); return; }
  root.dataset.camera = camera;
  const edit = structuredClone(data.cameras[camera] || { zones: {}, lines: {}, rules: [] });
  let drawing = null; // {kind: "zone"|"line", name, points}
  const canvas = h("canvas", { id: "zcanvas" });
  const name = h("input", { id: "zname", size: 12, value: `zone${Object.keys(edit.zones).length + 1}` });
  const itemsBox = h("div", { id: "zitems" });
  const rulesBox = h("div", { id: "zrules" });
  const msg = h("p", { id: "zmsg", className: "muted" });
  const camSelect = h("select", { id: "zcam", onchange: (ev) => { root.dataset.camera = ev.target.value; renderZones(root, ui, api, reload); } },
    cameras.map((c) => h("option", { value: c, selected: c === camera }, c)));
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
    const entries = [...Object.keys(edit.zones).map((n) => ["zones", n]), ...Object.keys(edit.lines).map((n) => ["lines", n])];
    fill(itemsBox, entries.map(([k, n]) => h("div", {}, `${t(k === "zones" ? "zone" : "line")} `, h("b", {}, n), " ",
      h("button", { onclick: () => { delete edit[k][n]; items(); rules(); redraw(); } }, t("remove")))));
  };
  const rules = () => {
    const zoneOpts = ["", ...Object.keys(edit.zones)], lineOpts = ["", ...Object.keys(edit.lines)];
    fill(rulesBox, edit.rules.map((r, i) => {
      const row = h("div", { dataset: { i: String(i) } },
        select("type", RULE_TYPES, r.type), " ", select("zone", zoneOpts, r.zone), " ", select("line", lineOpts, r.line), " ",
        h("input", { dataset: { f: "min_duration" }, size: 3, value: r.min_duration ?? "", title: t("minDuration"), placeholder: t("minDuration") }), " ",
        h("input", { dataset: { f: "max_people" }, size: 3, value: r.max_people ?? "", title: t("maxPeople"), placeholder: t("maxPeople"),
          hidden: r.type !== "crowding" }), " ",
        select("severity", SEVERITIES, r.severity ?? "warning"), " ",
        h("button", { dataset: { del: String(i) }, onclick: () => { edit.rules.splice(i, 1); rules(); } }, "✕"));
      for (const el of row.querySelectorAll("[data-f]")) el.addEventListener("change", () => {
        const f = el.dataset.f;
        r[f] = NUMBER_FIELDS.has(f) ? (el.value === "" ? null : Number(el.value)) : el.value;
        if (f === "type") rules(); // crowding shows its max_people field
      });
      return row;
    }));
  };
  fill(root,
    h("h3", {}, t("zoneEditor")),
    h("div", { className: "zone-editor" },
      h("div", {}, canvas, h("p", { className: "muted" }, t("clickPoints"))),
      h("div", { className: "panel" },
        h("div", {}, camSelect, " ", h("button", { id: "zreload", onclick: loadFrame }, t("reload"))),
        h("div", {}, name, " ",
          h("button", { id: "znew", onclick: () => { drawing = { kind: "zone", name: name.value.trim(), points: [] }; } }, t("newZone")), " ",
          h("button", { id: "lnew", onclick: () => { drawing = { kind: "line", name: name.value.trim(), points: [] }; } }, t("newLine")), " ",
          h("button", { id: "zfinish", onclick: finish }, t("finish"))),
        itemsBox, h("h3", {}, t("rule")), rulesBox,
        h("button", { id: "zaddrule", onclick: () => {
          edit.rules.push({ type: "intrusion", zone: Object.keys(edit.zones)[0] || "", min_duration: 1 }); rules();
        } }, t("addRule")), " ",
        h("button", { id: "zsave", onclick: save }, t("save")), msg)));
  async function save() {
    // Every key of every rule goes back (untouched ones too); "" or null removes a key from the file.
    const body = { zones: edit.zones, lines: edit.lines,
      rules: edit.rules.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => k !== "_name"))) };
    try {
      await api(`/api/zones/${encodeURIComponent(camera)}`, { method: "PUT", body: JSON.stringify(body) });
      msg.className = "muted"; msg.textContent = t("saved");
      await reload();
    } catch (err) { msg.className = "error"; msg.textContent = err.message; }
  }
  loadFrame();
  items(); rules();
}
