// The Reports page: the incident report of `anjeon report` for a chosen range, with its charts, and the PDF.
// Figures and charts come from /api/reports (made by the safety service); values are shown as text only.
import { lang } from "./i18n.js";
import { h, fill } from "./dom.js";

const WORDS = {
  en: { from: "From", to: "To", camera: "Camera (empty: all)", show: "Show", pdf: "Download PDF", loading: "Making the report…",
    total: "Incidents", mean: "Mean response", worst: "Worst response", acked: "Acknowledged",
    head: ["Camera", "Rule", "Type", "Incidents", "Acknowledged", "False alarms", "FA rate", "Resolved"],
    zones: "Top zones", longest: "Longest incidents", charts: "Charts" },
  ko: { from: "시작일", to: "종료일", camera: "카메라 (비우면 전체)", show: "보기", pdf: "PDF 내려받기", loading: "보고서 작성 중…",
    total: "사건 수", mean: "평균 응답", worst: "최장 응답", acked: "확인된 사건",
    head: ["카메라", "규칙", "유형", "사건", "확인", "오경보", "오경보율", "조치 완료"],
    zones: "사건이 많은 구역", longest: "가장 긴 사건", charts: "그래프" },
};
const w = (k) => (WORDS[lang] || WORDS.en)[k];
const day = (d) => d.toISOString().slice(0, 10);
const secs = (v) => (typeof v === "number" ? (v < 120 ? `${v.toFixed(0)} s` : `${(v / 60).toFixed(1)} min`) : "-");
const when = (ts) => (typeof ts === "number" ? new Date(ts * 1000).toLocaleString(lang === "ko" ? "ko-KR" : "en-GB") : "-");

function table(head, rows) {
  return h("table", { className: "table" }, h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

function query(form) {
  const data = new FormData(form);
  const q = new URLSearchParams({ lang });
  for (const key of ["since", "until"]) if (data.get(key)) q.set(key, data.get(key));
  for (const cam of String(data.get("camera") || "").split(",").map((s) => s.trim()).filter(Boolean)) q.append("camera", cam);
  return q;
}

export function renderReports(root, api) {
  const now = new Date();
  const form = h("form", { id: "report-form", className: "filters" },
    h("label", {}, `${w("from")} `, h("input", { type: "date", name: "since", value: day(new Date(now - 7 * 86400e3)) })),
    h("label", {}, `${w("to")} `, h("input", { type: "date", name: "until", value: day(now) })),
    h("label", {}, `${w("camera")} `, h("input", { name: "camera", size: 14 })),
    h("button", { type: "submit" }, w("show")),
    h("a", { id: "report-pdf", className: "button", download: "" }, w("pdf")));
  const out = h("div", { id: "report-out" });
  fill(root, form, out);
  const load = async () => {
    const q = query(form);
    form.querySelector("#report-pdf").href = `/api/reports/report.pdf?${q}`;
    fill(out, h("p", { className: "muted" }, w("loading")));
    try {
      const { figures: f, charts } = await api(`/api/reports?${q}`);
      const rules = (f.rules || []).map((r) => [r.camera, r.rule, r.type, r.incidents, r.acknowledged, r.false_alarms,
        `${Math.round(100 * r.false_alarm_rate)} %`, r.resolved]);
      const img = (b64, name) => h("img", { className: "chart", alt: name, dataset: { chart: name }, src: `data:image/png;base64,${b64}` });
      fill(out,
        h("div", { className: "cards" },
          h("div", { className: "card" }, w("total"), h("b", { id: "report-total" }, String(f.total))),
          h("div", { className: "card" }, w("mean"), h("b", {}, secs(f.response_mean))),
          h("div", { className: "card" }, w("worst"), h("b", {}, secs(f.response_worst))),
          h("div", { className: "card" }, w("acked"), h("b", {}, `${f.response_count} / ${f.total}`))),
        table(w("head"), rules),
        h("h3", {}, w("charts")), Object.entries(charts).map(([name, b64]) => img(b64, name)),
        h("h3", {}, w("zones")), table([w("head")[0], "zone", w("head")[3]], (f.zones || []).map((z) => z.map(String))),
        h("h3", {}, w("longest")), table([w("from"), w("head")[0], w("head")[1], "s"],
          (f.longest || []).map((e) => [when(e.started), e.camera, e.rule, secs(e.duration)])));
    } catch (err) {
      fill(out, h("p", { className: "error" }, err.message));
    }
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  load();
}
