"""What report.html's sections share: the page's style, charts as inline SVG, and numbers and tables as HTML."""

from __future__ import annotations

import html
import io
import math
from typing import Any

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d9dde5;padding-bottom:4px}
.muted{color:#667085} .card{background:#fff;border:1px solid #e3e6ec;border-radius:8px;padding:14px 16px;margin:10px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:10px}
.kpi b{display:block;font-size:20px} .ok{color:#067647} .bad{color:#b42318} .warn{color:#b54708}
table{border-collapse:collapse;width:100%;font-size:12.5px;background:#fff}
th,td{padding:4px 8px;border-bottom:1px solid #eef0f4;text-align:right}
th{background:#f0f2f6;position:sticky;top:0} td:first-child,th:first-child{text-align:left}
.scroll{max-height:420px;overflow:auto;border:1px solid #e3e6ec;border-radius:8px}
svg{max-width:100%;height:auto} code{background:#eef0f4;padding:1px 4px;border-radius:4px}
tr.chosen td{background:#e8f5ee;font-weight:600}
"""


def svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.{max(digits, 2)}g}"
        return f"{value:.{digits}f}" if digits <= 1 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return html.escape(str(value))


# digits shown per column: rates, times and sizes to one decimal, scores to four
DIGITS = {"throughput": 1, "p50_ms": 1, "p99_ms": 1, "peak_rss_mb": 1, "latency_ms": 1, "train_time_s": 1}


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], chosen: Any = None,
           key: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = []
    for row in rows:
        cls = ' class="chosen"' if key is not None and chosen is not None and row.get(key) == chosen else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{num(row.get(name), DIGITS.get(name, 4))}</td>"
                                            for name, _ in columns) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
