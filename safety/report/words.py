"""The report's words in Korean and English (a Korean site keeps its incident report in Korean)."""

from __future__ import annotations

from typing import TypedDict


class Words(TypedDict):
    """Every phrase of the report: both languages must give all of them (the type checker says which is missing)."""

    title: str
    made: str
    period: str
    cameras: str
    all: str
    total: str
    response_mean: str
    response_worst: str
    acknowledged: str
    per_day: str
    per_hour: str
    hour: str
    incidents: str
    per_rule: str
    heatmap: str
    points: str
    longest: str
    started: str
    duration: str
    peak: str
    zone: str
    camera: str
    rule: str
    false_alarms: str
    rate: str
    false_alarm_rate: str
    top_zones: str
    charts: str
    item: str
    value: str
    none: str
    rule_head: list[str]  # the columns of the table per camera and rule
    types: dict[str, str]  # rule type -> its name
    outcomes: dict[str, str]  # acknowledgement outcome -> its name


WORDS: dict[str, Words] = {
    "en": {
        "title": "Safety incident report",
        "made": "Made",
        "period": "Period",
        "cameras": "Cameras",
        "all": "all",
        "total": "Incidents",
        "response_mean": "Mean response time",
        "response_worst": "Worst response time",
        "acknowledged": "Acknowledged",
        "per_day": "Incidents per day",
        "per_hour": "Incidents per hour of day",
        "hour": "hour",
        "incidents": "incidents",
        "per_rule": "Incidents per camera and rule",
        "heatmap": "Where offenders stood",
        "points": "foot points",
        "longest": "Longest incidents",
        "started": "Started",
        "duration": "Duration",
        "peak": "Peak",
        "zone": "Zone",
        "camera": "Camera",
        "rule": "Rule",
        "false_alarms": "False alarms",
        "rate": "Rate",
        "false_alarm_rate": "False-alarm rate per rule",
        "top_zones": "Top zones",
        "charts": "Charts",
        "item": "Item",
        "value": "Value",
        "none": "No incidents.",
        "rule_head": [
            "Camera",
            "Rule",
            "Type",
            "Incidents",
            "Acknowledged",
            "False alarms",
            "FA rate",
            "Resolved",
        ],
        "types": {
            "intrusion": "intrusion",
            "helmet": "no helmet",
            "fall": "fall",
            "crowding": "crowding",
            "line_crossing": "line crossing",
            "dwell": "loitering",
        },
        "outcomes": {"false_alarm": "false alarm", "resolved": "resolved", "": ""},
    },
    "ko": {
        "title": "안전 사고 보고서",
        "made": "작성",
        "period": "기간",
        "cameras": "카메라",
        "all": "전체",
        "total": "사건 수",
        "response_mean": "평균 응답 시간",
        "response_worst": "최장 응답 시간",
        "acknowledged": "확인된 사건",
        "per_day": "일별 사건 수",
        "per_hour": "시간대별 사건 수",
        "hour": "시",
        "incidents": "건",
        "per_rule": "카메라·규칙별 사건 수",
        "heatmap": "위반자 위치 분포",
        "points": "발 위치",
        "longest": "가장 긴 사건",
        "started": "시작",
        "duration": "지속 시간",
        "peak": "최대 인원",
        "zone": "구역",
        "camera": "카메라",
        "rule": "규칙",
        "false_alarms": "오경보",
        "rate": "비율",
        "false_alarm_rate": "규칙별 오경보 비율",
        "top_zones": "사건이 많은 구역",
        "charts": "그래프",
        "item": "항목",
        "value": "값",
        "none": "사건 없음.",
        "rule_head": ["카메라", "규칙", "유형", "사건", "확인", "오경보", "오경보율", "조치 완료"],
        "types": {
            "intrusion": "위험구역 침입",
            "helmet": "안전모 미착용",
            "fall": "쓰러짐",
            "crowding": "밀집",
            "line_crossing": "경계선 통과",
            "dwell": "배회",
        },
        "outcomes": {"false_alarm": "오경보", "resolved": "조치 완료", "": ""},
    },
}


def words(lang: str) -> Words:
    """The phrases of ``lang`` (English for a language the report does not speak)."""
    return WORDS.get(lang, WORDS["en"])
