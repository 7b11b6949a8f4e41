// Labels in English and Korean; the page calls t(key) and re-renders on a switch.
const LABELS = {
  en: {
    title: "anjeon safety console", live: "Live", history: "History", system: "System", zones: "Zones",
    reports: "Reports",
    alarms: "Alarms", noAlarms: "No active alarms", ack: "Acknowledge", acked: "Acknowledged by",
    online: "online", offline: "offline", fps: "fps", latency: "latency", people: "people",
    broker: "Broker", brokerOffline: "broker offline", workers: "Workers", edges: "Edges", cameras: "Cameras",
    subscribers: "Subscribers", drops: "Drops", camera: "Camera", rule: "Rule", type: "Type", state: "State",
    from: "From", to: "To", search: "Search", exportCsv: "Export CSV", started: "Started", duration: "Duration",
    peak: "Peak", snapshot: "Snapshot", all: "all", open: "open", ended: "ended", operator: "Operator",
    noCameras: "No cameras yet: start an edge (anjeon edge --camera NAME=SOURCE).", back: "All cameras",
    name: "Name", model: "Model", device: "Device", batch: "Batch", load: "Load", uptime: "Uptime",
    pending: "Pending", reconnects: "Reconnects", source: "Source", sound: "Sound", logout: "Log out",
    events: "events", none: "none", noEvents: "No events match.", historyError: "History unavailable",
    login: "Log in", user: "User", password: "Password", loginFailed: "Wrong user or password",
    zoneEditor: "Zone editor", newZone: "New zone", newLine: "New line", finish: "Finish", remove: "Delete",
    save: "Save", saved: "Saved; the safety service applies it within seconds", reload: "Reload frame",
    addRule: "Add rule", notEditable: "Start the viewer with --config SITE.yaml to edit zones.",
    minDuration: "min s", zone: "Zone", line: "Line", clickPoints: "Click corners on the frame; Finish closes it.",
    cpu: "CPU", credit: "Credit", results: "Results", role: "Role", frames: "frames",
    searchCameras: "Search cameras", allCameras: "All cameras", inAlarm: "in alarm", alarm: "alarm",
    perPage: "per page", page: "Page", camerasShort: "cameras", newer: "‹ Newer", older: "Older ›",
    worker: "worker", maxPeople: "max people", viewerDrops: "Console drops",
  },
  ko: {
    title: "안전 관제 콘솔", live: "실시간", history: "이력", system: "시스템", zones: "구역",
    reports: "보고서",
    alarms: "경보", noAlarms: "활성 경보 없음", ack: "확인", acked: "확인자",
    online: "온라인", offline: "오프라인", fps: "fps", latency: "지연", people: "인원",
    broker: "브로커", brokerOffline: "브로커 연결 끊김", workers: "추론 서버", edges: "에지", cameras: "카메라",
    subscribers: "구독자", drops: "누락", camera: "카메라", rule: "규칙", type: "유형", state: "상태",
    from: "시작", to: "종료", search: "검색", exportCsv: "CSV 내보내기", started: "발생 시각", duration: "지속",
    peak: "최대", snapshot: "스냅샷", all: "전체", open: "진행 중", ended: "종료", operator: "담당자",
    noCameras: "카메라가 없습니다: 에지를 시작하세요 (anjeon edge --camera NAME=SOURCE).", back: "전체 카메라",
    name: "이름", model: "모델", device: "장치", batch: "배치", load: "부하", uptime: "가동 시간",
    pending: "대기", reconnects: "재연결", source: "소스", sound: "소리", logout: "로그아웃",
    events: "건", none: "없음", noEvents: "조건에 맞는 이벤트가 없습니다.", historyError: "이력을 불러올 수 없습니다",
    login: "로그인", user: "사용자", password: "비밀번호", loginFailed: "사용자 또는 비밀번호가 틀렸습니다",
    zoneEditor: "구역 편집", newZone: "새 구역", newLine: "새 선", finish: "완료", remove: "삭제",
    save: "저장", saved: "저장됨: 안전 서비스가 몇 초 안에 적용합니다", reload: "화면 새로고침",
    addRule: "규칙 추가", notEditable: "구역을 편집하려면 뷰어를 --config SITE.yaml 로 시작하세요.",
    minDuration: "최소 초", zone: "구역", line: "선", clickPoints: "화면에서 꼭짓점을 클릭하고 완료를 누르세요.",
    cpu: "CPU", credit: "크레딧", results: "결과", role: "역할", frames: "프레임",
    searchCameras: "카메라 검색", allCameras: "전체 카메라", inAlarm: "경보 중", alarm: "경보",
    perPage: "페이지당", page: "페이지", camerasShort: "대", newer: "‹ 최신", older: "이전 ›",
    worker: "추론 서버", maxPeople: "최대 인원", viewerDrops: "콘솔 누락",
  },
};

export let lang = localStorage.getItem("anjeon.lang") || ((navigator.language || "").startsWith("ko") ? "ko" : "en");

export function t(key) {
  return (LABELS[lang] && LABELS[lang][key]) || LABELS.en[key] || key;
}

export function setLang(value) {
  lang = value === "ko" ? "ko" : "en";
  localStorage.setItem("anjeon.lang", lang);
  document.documentElement.lang = lang;
}

// Every element with data-i18n gets its label; called after each switch and render.
export function translate(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}
