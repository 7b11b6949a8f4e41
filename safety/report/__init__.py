"""The safety manager's incident report (`anjeon report`, the console's Reports page, scheduled delivery).

data.py counts (read-only on the event store), render.py draws (PDF with an
embedded Korean font, or one self-contained HTML file), deliver.py sends
scheduled reports by webhook and e-mail. docs/reports.md says how to use it.
"""

from __future__ import annotations

from pathlib import Path

from .data import ReportData, collect


def make_report(
    store: str | Path, since: float, until: float, cameras: tuple[str, ...], lang: str, fmt: str, out: Path
) -> ReportData:
    """Collect and write one report file; returns the figures it shows."""
    from .render import write_html, write_pdf

    data = collect(store, since, until, cameras)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    (write_pdf if fmt == "pdf" else write_html)(data, lang, tmp)
    tmp.replace(out)
    return data


__all__ = ["ReportData", "collect", "make_report"]
