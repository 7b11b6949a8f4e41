"""The report as PDF (A4 pages drawn by matplotlib, Korean in NanumGothic, embedded) or as one HTML file.

Both are made from the same ReportData and the same charts: incidents per
day (stacked by rule type) and per hour of day, a table per camera and
rule, top zones, response times, false-alarm rate per rule, the longest
incidents with their snapshots, and a heatmap per camera of where the
offenders stood, over that camera's newest snapshot.
"""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path
from typing import Any

from .data import ReportData
from .words import Words, words

FONT_DIR = Path("/usr/share/fonts/truetype/nanum")  # Debian's fonts-nanum
FONT = "NanumGothic"
A4 = (8.27, 11.69)


def _matplotlib() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import logging

    for noisy in (
        "fontTools",
        "matplotlib.font_manager",
    ):  # font subsetting chatter at INFO, bold-weight guesses
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from matplotlib import font_manager, pyplot

    for name in ("NanumGothic.ttf", "NanumGothicBold.ttf"):
        path = FONT_DIR / name
        if path.exists():
            font_manager.fontManager.addfont(str(path))
    matplotlib.rcParams.update(
        {
            "font.family": [FONT, "DejaVu Sans"],
            "pdf.fonttype": 42,  # TrueType, embedded
            "axes.unicode_minus": False,
            "font.size": 9,
        }
    )
    return pyplot


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def _secs(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f} s" if v < 120 else f"{v / 60:.1f} min"


# ---- charts (shared by both formats) ----------------------------------------------------------------------
def chart_days(plt: Any, data: ReportData, w: Words, ax: Any) -> None:
    days = list(data.per_day)
    bottom = [0] * len(days)
    for kind, counts in data.per_day_rule.items():
        values = [counts.get(d, 0) for d in days]
        ax.bar(range(len(days)), values, bottom=bottom, label=w["types"].get(kind, kind))
        bottom = [a + b for a, b in zip(bottom, values)]
    step = max(1, len(days) // 12)
    ax.set_xticks(range(0, len(days), step), [d[5:] for d in days[::step]], rotation=45, ha="right")
    ax.set_title(w["per_day"])
    ax.set_ylabel(w["incidents"])
    if data.per_day_rule:
        ax.legend(fontsize=7)


def chart_hours(plt: Any, data: ReportData, w: Words, ax: Any) -> None:
    ax.bar(range(24), data.per_hour, color="#c0392b")
    ax.set_xticks(range(0, 24, 2))
    ax.set_title(w["per_hour"])
    ax.set_xlabel(w["hour"])
    ax.set_ylabel(w["incidents"])


def chart_rules(plt: Any, data: ReportData, w: Words, ax: Any) -> None:
    labels = [f"{f.camera} · {f.rule}" for f in data.rules][:15]
    ax.barh(range(len(labels)), [f.incidents for f in data.rules][:15], color="#2e86c1")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_title(w["per_rule"])
    ax.set_xlabel(w["incidents"])


def heatmap(plt: Any, data: ReportData, camera: str, w: Words, ax: Any) -> None:
    import numpy as np

    pts = data.points.get(camera, [])
    bg = data.backgrounds.get(camera)
    extent = (0, 1, 1, 0)
    if bg:
        ax.imshow(plt.imread(bg), extent=extent, aspect="auto")
    else:
        ax.set_facecolor("#444")
    if pts:
        xy = np.array(pts)
        grid, _, _ = np.histogram2d(xy[:, 1], xy[:, 0], bins=(48, 64), range=((0, 1), (0, 1)))
        kernel = np.array([1, 4, 6, 4, 1], float) / 16  # a small blur: a foot point is not a pixel
        for axis in (0, 1):
            grid = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, grid)
        level = grid / grid.max()
        # An RGBA overlay whose opacity follows the density (a masked array would vanish under interpolation).
        rgba = plt.get_cmap("hot")(level)
        rgba[..., 3] = np.clip(level, 0, 1) ** 0.5 * 0.85
        ax.imshow(rgba, extent=extent, aspect="auto", interpolation="bilinear")
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{w['heatmap']}: {camera} ({len(pts)} {w['points']})")


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _summary_rows(data: ReportData, w: Words) -> list[tuple[str, str]]:
    return [
        (w["period"], f"{_when(data.since)} – {_when(data.until - 60)}"),  # the end is exclusive
        (w["cameras"], ", ".join(data.cameras) or w["all"]),
        (w["total"], str(data.total)),
        (w["response_mean"], _secs(data.response_mean)),
        (w["response_worst"], _secs(data.response_worst)),
        (w["acknowledged"], f"{data.response_count} / {data.total}"),
    ]


def _rule_rows(data: ReportData, w: Words) -> list[list[str]]:
    return [
        [
            f.camera,
            f.rule,
            w["types"].get(f.type, f.type),
            str(f.incidents),
            str(f.acknowledged),
            str(f.false_alarms),
            f"{100 * f.false_alarm_rate:.0f} %",
            str(f.resolved),
        ]
        for f in data.rules
    ]


def _longest_rows(data: ReportData, w: Words) -> list[list[str]]:
    return [
        [
            _when(e["started"]),
            e["camera"],
            e["rule"],
            e["zone"] or "-",
            _secs(e["duration"]),
            str(e["peak"]),
            w["outcomes"].get(e["outcome"] or "", ""),
        ]
        for e in data.longest
    ]


# ---- PDF ------------------------------------------------------------------------------------------------------
def _table(ax: Any, head: list[str], rows: list[list[str]], y: float, height: float) -> None:
    ax.axis("off")
    if not rows:
        rows = [["-"] * len(head)]
    t = ax.table(
        cellText=rows, colLabels=head, loc="upper center", cellLoc="left", bbox=(0, y - height, 1, height)
    )
    t.auto_set_font_size(False)
    t.set_fontsize(7.5)


def write_pdf(data: ReportData, lang: str, out: Path) -> None:
    from matplotlib.backends.backend_pdf import PdfPages

    plt = _matplotlib()
    w = words(lang)
    with PdfPages(out, metadata={"Title": w["title"], "Creator": "anjeon report"}) as pdf:
        fig = plt.figure(figsize=A4)
        fig.text(0.07, 0.95, w["title"], fontsize=18, weight="bold")
        fig.text(0.07, 0.925, f"{w['made']} {_when(data.made)}", fontsize=8, color="#555")
        y = 0.9
        for k, v in _summary_rows(data, w):
            fig.text(0.07, y, k, fontsize=10, weight="bold")
            fig.text(0.38, y, v, fontsize=10)
            y -= 0.022
        rules = _rule_rows(data, w)[:22]
        h = 0.018 * (len(rules or [0]) + 1)  # the table's height on the page, by its rows
        _table(fig.add_axes((0.07, 0.74 - h, 0.86, h)), w["rule_head"], rules, 1.0, 1.0)
        fa = [
            [rule, f"{n} / {total}", f"{100 * n / total:.0f} %" if total else "-"]
            for rule, (n, total) in data.false_alarm_by_rule.items()
        ][:10]
        zones = [[cam, zone, str(n)] for cam, zone, n in data.zones]
        top = 0.74 - h - 0.06
        for x, title, head, rows in (
            (0.07, w["false_alarm_rate"], [w["rule"], w["false_alarms"], w["rate"]], fa),
            (0.53, w["top_zones"], [w["camera"], w["zone"], w["incidents"]], zones),
        ):
            hh = 0.02 * (len(rows or [0]) + 1)
            ax = fig.add_axes((x, top - hh, 0.40, hh))
            ax.set_title(title, fontsize=10, loc="left")
            _table(ax, head, rows, 1.0, 1.0)
        pdf.savefig(fig)
        plt.close(fig)

        fig, axes = plt.subplots(3, 1, figsize=A4)
        chart_days(plt, data, w, axes[0])
        chart_hours(plt, data, w, axes[1])
        chart_rules(plt, data, w, axes[2])
        fig.tight_layout(pad=2.0)
        pdf.savefig(fig)
        plt.close(fig)

        fig = plt.figure(figsize=A4)
        fig.text(0.07, 0.95, w["longest"], fontsize=14, weight="bold")
        for i, e in enumerate(data.longest):
            top = 0.93 - i * 0.18
            ax = fig.add_axes((0.07, top - 0.16, 0.28, 0.15))
            ax.axis("off")
            if e["snapshot"] and Path(e["snapshot"]).is_file():
                ax.imshow(plt.imread(e["snapshot"]))
            row = _longest_rows(data, w)[i]
            fig.text(0.38, top - 0.03, f"{row[1]} · {row[2]}", fontsize=11, weight="bold")
            fig.text(0.38, top - 0.06, f"{w['started']}: {row[0]}", fontsize=9)
            fig.text(
                0.38,
                top - 0.085,
                f"{w['duration']}: {row[4]} · {w['peak']}: {row[5]} · {w['zone']}: {row[3]}",
                fontsize=9,
            )
            if row[6]:
                fig.text(0.38, top - 0.11, row[6], fontsize=9, color="#a00")
        if not data.longest:
            fig.text(0.07, 0.9, w["none"], fontsize=10)
        pdf.savefig(fig)
        plt.close(fig)

        cams = sorted(set(data.points) | set(data.backgrounds) | {f.camera for f in data.rules})
        for start in range(0, len(cams), 2):
            fig, axes = plt.subplots(2, 1, figsize=A4, squeeze=False)
            for j in range(2):
                ax = axes[j][0]
                if start + j < len(cams):
                    heatmap(plt, data, cams[start + j], w, ax)
                else:
                    ax.axis("off")
            fig.tight_layout(pad=2.0)
            pdf.savefig(fig)
            plt.close(fig)


# ---- HTML -----------------------------------------------------------------------------------------------------
def _html_table(head: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{e(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
        + "</tbody></table>"
    )


def charts_png(data: ReportData, lang: str) -> dict[str, str]:
    """The charts as base64 PNGs: days, hours, rules, and one heatmap per camera (the console's Reports page)."""
    plt = _matplotlib()
    w = words(lang)
    out = {}
    for name, draw in (("days", chart_days), ("hours", chart_hours), ("rules", chart_rules)):
        fig, ax = plt.subplots(figsize=(8, 3.2))
        draw(plt, data, w, ax)
        out[name] = _png(fig)
        plt.close(fig)
    for cam in sorted(set(data.points) | set(data.backgrounds) | {f.camera for f in data.rules}):
        fig, ax = plt.subplots(figsize=(6, 4.5))
        heatmap(plt, data, cam, w, ax)
        out[f"heatmap:{cam}"] = _png(fig)
        plt.close(fig)
    return out


def write_html(data: ReportData, lang: str, out: Path) -> None:
    out.write_text(render_html(data, lang), encoding="utf-8")


def render_html(data: ReportData, lang: str) -> str:
    w = words(lang)
    e = html.escape
    charts = charts_png(data, lang)
    img = lambda b64: f'<img alt="" src="data:image/png;base64,{b64}">'  # noqa: E731
    longest = []
    for ev, row in zip(data.longest, _longest_rows(data, w)):
        snap = ""
        if ev["snapshot"] and Path(ev["snapshot"]).is_file():
            snap = img(base64.b64encode(Path(ev["snapshot"]).read_bytes()).decode()).replace(
                "image/png", "image/jpeg"
            )
        longest.append(
            f"<div class='incident'>{snap}<div><b>{e(row[1])} · {e(row[2])}</b><br>{e(w['started'])}: "
            f"{e(row[0])}<br>{e(w['duration'])}: {e(row[4])} · {e(w['peak'])}: {e(row[5])} · "
            f"{e(w['zone'])}: {e(row[3])}<br><i>{e(row[6])}</i></div></div>"
        )
    fa = [
        [rule, f"{n} / {total}", f"{100 * n / total:.0f} %" if total else "-"]
        for rule, (n, total) in data.false_alarm_by_rule.items()
    ]
    parts = [
        f"<!doctype html><html lang='{e(lang)}'><head><meta charset='utf-8'><title>{e(w['title'])}</title>",
        "<style>body{font-family:'NanumGothic','Noto Sans KR',sans-serif;margin:24px;color:#222}"
        "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
        "th{background:#f3f3f3}img{max-width:100%}.incident{display:flex;gap:12px;margin:8px 0}"
        ".incident img{width:240px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}</style></head><body>",
        f"<h1>{e(w['title'])}</h1><p class='made'>{e(w['made'])} {e(_when(data.made))}</p>",
        _html_table([w["item"], w["value"]], [list(r) for r in _summary_rows(data, w)]),
        f"<h2>{e(w['per_rule'])}</h2>",
        _html_table(w["rule_head"], _rule_rows(data, w)),
        f"<h2>{e(w['charts'])}</h2>",
        img(charts["days"]),
        img(charts["hours"]),
        img(charts["rules"]),
        f"<h2>{e(w['false_alarm_rate'])}</h2>",
        _html_table([w["rule"], w["false_alarms"], w["rate"]], fa),
        f"<h2>{e(w['top_zones'])}</h2>",
        _html_table([w["camera"], w["zone"], w["incidents"]], [[c, z, str(n)] for c, z, n in data.zones]),
        f"<h2>{e(w['longest'])}</h2>",
        "".join(longest) or f"<p>{e(w['none'])}</p>",
        f"<h2>{e(w['heatmap'])}</h2><div class='grid'>",
        "".join(img(v) for k, v in charts.items() if k.startswith("heatmap:")),
        "</div></body></html>",
    ]
    return "".join(parts)
