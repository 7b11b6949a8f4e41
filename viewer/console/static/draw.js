// Drawing a frame in the browser: the JPEG, then zones, lines and boxes from the metadata (no server re-encode).
const CLASS_COLORS = { person: "#22c55e", head: "#38bdf8" };

function colorOf(cls, label) {
  if (label === "Fall") return "#f97316";
  if (label === "Without Helmet") return "#ef4444";
  return CLASS_COLORS[cls] || "#eab308";
}

// Zones and lines are normalized 0..1 (docs/safety.md); boxes are pixels of the frame as sent.
export function drawOverlay(ctx, w, h, meta, cam, alarmZones) {
  const scale = Math.max(1, w / 640);
  ctx.lineWidth = 2 * scale;
  ctx.font = `${Math.round(13 * scale)}px "Noto Sans KR", "NanumGothic", sans-serif`;
  if (cam) {
    for (const [name, pts] of Object.entries(cam.zones || {})) {
      const hot = alarmZones && alarmZones.has(name);
      ctx.strokeStyle = hot ? "#ef4444" : "#f59e0b";
      ctx.fillStyle = hot ? "rgba(239,68,68,0.18)" : "rgba(245,158,11,0.10)";
      ctx.beginPath();
      pts.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
      ctx.closePath();
      ctx.fill();
      ctx.stroke();
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillText(name, pts[0][0] * w + 4 * scale, pts[0][1] * h + 14 * scale);
    }
    for (const [name, ln] of Object.entries(cam.lines || {})) {
      const [[x1, y1], [x2, y2]] = ln.points;
      ctx.strokeStyle = "#a855f7";
      ctx.setLineDash([8 * scale, 5 * scale]);
      ctx.beginPath();
      ctx.moveTo(x1 * w, y1 * h);
      ctx.lineTo(x2 * w, y2 * h);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = "#a855f7";
      ctx.fillText(name, x1 * w + 4 * scale, y1 * h - 4 * scale);
    }
  }
  if (!meta) return 0;
  const sx = w / meta.width, sy = h / meta.height;
  if (meta.tracks) return drawTracks(ctx, meta.tracks, sx, sy, scale);
  for (const d of meta.detections) {
    const text = `${d.label || d.class}${d.track !== undefined ? " #" + d.track : ""} ${Math.round(d.confidence * 100)}%`;
    drawBox(ctx, d.box, sx, sy, scale, colorOf(d.class, d.label), text, false);
  }
  return meta.detections.length;
}

// A box with its label above it (canvas text: whatever the label holds, it is drawn, never parsed).
function drawBox(ctx, box, sx, sy, scale, color, text, dashed) {
  const [x1, y1, x2, y2] = box;
  ctx.strokeStyle = color;
  if (dashed) ctx.setLineDash([6 * scale, 4 * scale]);
  ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
  ctx.setLineDash([]);
  const tw = ctx.measureText(text).width + 6 * scale;
  const th = 16 * scale;
  ctx.fillStyle = color;
  ctx.fillRect(x1 * sx, Math.max(0, y1 * sy - th), tw, th);
  ctx.fillStyle = "#111";
  ctx.fillText(text, x1 * sx + 3 * scale, Math.max(th, y1 * sy) - 4 * scale);
}

// The safety service's view of the people (trk/<camera>/): track id, red when it trips a rule, orange inside
// a zone, green outside, grey and dashed while not yet confirmed.
export const TRACK_COLORS = { tripped: "#ef4444", inZone: "#f59e0b", outside: "#22c55e", tentative: "#9ca3af" };

export function trackColor(tr) {
  if (!tr.confirmed) return TRACK_COLORS.tentative;
  if (tr.rules.length) return TRACK_COLORS.tripped;
  return tr.zones.length ? TRACK_COLORS.inZone : TRACK_COLORS.outside;
}

function trackLabel(tr) {
  const id = tr.id >= 0 ? `#${tr.id}` : "?";
  const where = tr.zones.length ? ` ${tr.zones.join(",")}` : "";
  const rules = tr.rules.length ? ` ⚠ ${tr.rules.join(",")}` : "";
  return `${id}${where}${rules}`;
}

function drawTracks(ctx, tracks, sx, sy, scale) {
  for (const tr of tracks) drawBox(ctx, tr.box, sx, sy, scale, trackColor(tr), trackLabel(tr), !tr.confirmed);
  return tracks.length;
}

// What the boxes say, as text (the canvas's accessible label, the single view's details line).
export function describe(meta) {
  if (meta.tracks) return meta.tracks.map(trackLabel).join("; ");
  return meta.detections.map((d) => `${d.label || d.class}${d.track !== undefined ? " #" + d.track : ""}`).join("; ");
}

// Paint one frame into a canvas sized to the picture; returns the number of boxes drawn.
export function paint(canvas, bitmap, meta, cam, alarmZones) {
  if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  return drawOverlay(ctx, canvas.width, canvas.height, meta, cam, alarmZones);
}
