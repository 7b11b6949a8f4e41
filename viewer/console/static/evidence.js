// The event drawer: an incident's clip (pre-roll to post-roll), its snapshot, and the operator's response
// (acknowledge with a note, mark resolved, or a false alarm with its reason), stored by the safety service.
// Opened from the History table and the alarm panel. Every value reaches the page as text (no markup).
import { lang } from "./i18n.js";
import { h as el } from "./dom.js";

const WORDS = {
  en: {
    clip: "Clip", download: "Download clip", noClip: "No clip", recording: "The clip is still recording (post-roll)",
    failed: "The clip failed", note: "Note", reason: "Reason (false alarm)", ack: "Acknowledge", resolved: "Resolved",
    falseAlarm: "False alarm", needReason: "A false alarm needs a reason", close: "Close", response: "response",
    by: "by", started: "Started", ended: "Ended", duration: "Duration", tracks: "Tracks", zone: "Zone",
    outcome: { false_alarm: "false alarm", resolved: "resolved", "": "" },
  },
  ko: {
    clip: "영상", download: "영상 내려받기", noClip: "영상 없음", recording: "영상 녹화 중 (사후 구간)",
    failed: "영상 생성 실패", note: "메모", reason: "사유 (오경보)", ack: "확인", resolved: "조치 완료",
    falseAlarm: "오경보", needReason: "오경보는 사유가 필요합니다", close: "닫기", response: "응답",
    by: "확인자", started: "시작", ended: "종료", duration: "지속", tracks: "추적 ID", zone: "구역",
    outcome: { false_alarm: "오경보", resolved: "조치 완료", "": "" },
  },
};
const w = (key) => (WORDS[lang] || WORDS.en)[key] ?? WORDS.en[key] ?? key;

const when = (ts) => (typeof ts === "number" ? new Date(ts * 1000).toLocaleString(lang === "ko" ? "ko-KR" : "en-GB") : "-");

function ackText(ack) {
  if (!ack) return "-";
  const parts = [`${w("by")} ${ack.by} · ${when(ack.at)}`];
  if (typeof ack.response === "number") parts.push(`${w("response")} ${ack.response.toFixed(0)} s`);
  if (ack.outcome) parts.push(`${w("outcome")[ack.outcome] || ack.outcome}${ack.reason ? `: ${ack.reason}` : ""}`);
  if (ack.note) parts.push(`“${ack.note}”`);
  return parts.join(" · ");
}

function clipView(ev) {
  const id = encodeURIComponent(ev.id);
  const status = el("p", { className: "muted clip-status" });
  const video = el("video", { className: "clip", controls: true, muted: true, autoplay: true, preload: "auto",
    src: `/api/events/${id}/clip.mp4` });
  const link = el("a", { className: "button clip-download", href: `/api/events/${id}/clip.mp4?download=1`,
    download: `anjeon-${ev.id}.mp4` }, w("download"));
  video.style.maxWidth = "min(90vw, 960px)";  // CSSOM, not a style attribute: allowed by the page's CSP
  video.style.maxHeight = "60vh";
  video.addEventListener("error", () => {
    const state = ev.clip?.state;
    status.textContent = state === "recording" ? w("recording") : state === "failed" ? `${w("failed")}: ${ev.clip.error || ""}` : w("noClip");
    video.hidden = true;
    link.hidden = true;
  });
  return el("div", { className: "clip-box" }, video, link, status);
}

// ev: the event map (from History or the alarm list); api: the page's fetch helper; who(): the operator's name;
// done(stored): called after the safety service stored the response.
export function openEvent(ev, { api, who, done = () => {} }) {
  document.getElementById("event-drawer")?.remove();
  const result = el("p", { className: "muted ack-result" }, ackText(ev.ack));
  const note = el("input", { name: "note", maxLength: 500, placeholder: w("note"), size: 30 });
  const reason = el("input", { name: "reason", maxLength: 500, placeholder: w("reason"), size: 30 });
  async function respond(outcome) {
    if (outcome === "false_alarm" && !reason.value.trim()) { result.textContent = w("needReason"); return; }
    try {
      const body = { by: who(), note: note.value.trim(), outcome, reason: outcome === "false_alarm" ? reason.value.trim() : "" };
      const answer = await api(`/api/alarms/${encodeURIComponent(ev.id)}/ack`, { method: "POST", body: JSON.stringify(body) });
      ev.ack = answer.stored || ev.ack;
      result.textContent = ackText(ev.ack);
      done(ev);
    } catch (err) {
      result.textContent = err.message;
    }
  }
  const facts = [[w("started"), when(ev.started)], [w("ended"), when(ev.ended)],
    [w("duration"), typeof ev.duration === "number" ? `${ev.duration.toFixed(1)} s` : "-"],
    [w("zone"), ev.zone || ev.line || "-"], [w("tracks"), (ev.tracks || []).join(", ") || "-"]];
  const dlg = el("dialog", { id: "event-drawer", className: "drawer", dataset: { event: ev.id } },
    el("h3", {}, `${ev.camera} · ${ev.rule} · ${ev.type}`),
    el("dl", {}, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    el("h4", {}, w("clip")), clipView(ev),
    el("img", { className: "snapshot", alt: "", src: `/api/events/${encodeURIComponent(ev.id)}/snapshot.jpg`,
      onerror: (e) => (e.target.hidden = true) }),
    el("div", { className: "respond" }, note, reason,
      el("button", { className: "respond-ack", onclick: () => respond("") }, w("ack")),
      el("button", { className: "respond-resolved", onclick: () => respond("resolved") }, w("resolved")),
      el("button", { className: "respond-false", onclick: () => respond("false_alarm") }, w("falseAlarm"))),
    result,
    el("form", { method: "dialog" }, el("button", {}, w("close"))));
  dlg.addEventListener("close", () => dlg.remove());
  document.body.appendChild(dlg);
  dlg.showModal();
  return dlg;
}

const STORAGE_WORDS = {
  en: { storage: "Evidence storage", covered: "days covered", events: "events", snapshots: "snapshots",
    clips: "clips", free: "free", deleted: "deleted by retention", errors: "write errors" },
  ko: { storage: "증거 저장소", covered: "일 보관", events: "이벤트", snapshots: "스냅샷", clips: "영상",
    free: "여유", deleted: "보존 정책 삭제", errors: "쓰기 오류" },
};
const sw = (key) => (STORAGE_WORDS[lang] || STORAGE_WORDS.en)[key];
const mb = (n) => (typeof n === "number" ? `${(n / 1e6).toFixed(1)} MB` : "-");

// The System page's storage card: what the safety service stores, the days it covers, and write failures
// (a full disk shows here while the rules and alerts go on).
export async function storageCard(api) {
  let s;
  try { s = await api("/api/storage"); } catch (err) { return el("div", { className: "card storage", id: "storage-card" }, sw("storage"), el("b", { className: "small" }, err.message)); }
  const b = s.bytes || {};
  const used = (b.events || 0) + (b.snapshots || 0) + (b.clips || 0);
  const d = s.deleted || {};
  return el("div", { className: "card storage", id: "storage-card", dataset: { days: String(s.days ?? ""), used: String(used) } },
    sw("storage"), el("b", {}, `${mb(used)} · ${typeof s.days === "number" ? s.days.toFixed(1) : "-"} ${sw("covered")}`),
    el("div", { className: "small" }, `${sw("events")} ${mb(b.events)} · ${sw("snapshots")} ${mb(b.snapshots)} · ${sw("clips")} ${mb(b.clips)} · ${sw("free")} ${mb(s.disk?.free)}`),
    el("div", { className: "small" }, `${sw("deleted")}: ${d.clips ?? 0} / ${d.snapshots ?? 0} / ${d.events ?? 0}`),
    s.write_errors ? el("div", { className: "small error" }, `${sw("errors")} ${s.write_errors}: ${s.last_error || ""}`) : null);
}
