"""The browser viewer's page (``GET /``): the live MJPEG stream beside a stats panel.

The panel is filled in on the server, so it is right before the page's script first polls (and
without JavaScript); the script then refreshes it from ``/stats.json`` and writes every value as text,
never as HTML. Served with a Content-Security-Policy that allows nothing but this page's own inline
script and style and requests to its own origin (see ``i2i.runtime.web``).
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote


def render_page(title: str, payload: dict[str, Any], token: str | None = None) -> str:
    """The page with the stats panel already filled in, so it is right before its script first polls
    (and without JavaScript); the script then refreshes it from /stats.json twice a second.

    With a ``token``, the page's own requests carry it as ``?token=…``: a browser sends no Authorization
    header for an ``<img>`` or a plain fetch. Fully URL-quoted, it is safe in an attribute and a JS string.
    """

    def ms(value: Any) -> str:
        return "–" if value is None else f"{value:.1f}"

    live = payload.get("live") or {}
    stages = payload.get("stages") or {}
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{ms(s['p50_ms'])}</td><td>{ms(s['p95_ms'])}</td>"
        f"<td>{ms(s['p99_ms'])}</td></tr>"
        for name, s in stages.items()
    )
    values = {
        "TITLE": html.escape(title),
        "QUERY": token_query(token),
        "FPS": f"{live['fps']:.1f}" if "fps" in live else "–",
        "E2E": ms(stages.get("e2e", {}).get("p50_ms")),
        "FRAMES": str(payload.get("frames", 0)),
        "DROPPED": str(payload.get("dropped", 0)),
        "SKIPPED": str(payload["viewer"]["skipped"]),
        "ROWS": rows,
        "INFO": html.escape(" · ".join(f"{k}: {v}" for k, v in (payload.get("info") or {}).items())),
    }
    page = PAGE
    for key, value in values.items():
        page = page.replace("{{" + key + "}}", value)
    return page


def token_query(token: str | None) -> str:
    return f"?token={quote(token, safe='')}" if token else ""


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{TITLE}} viewer</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { margin: 0; background: #111; color: #ddd; font: 14px/1.4 system-ui, sans-serif; display: flex;
         gap: 16px; padding: 16px; box-sizing: border-box; min-height: 100vh; }
  #view { flex: 1; min-width: 0; }
  #stream { max-width: 100%; max-height: calc(100vh - 64px); display: block; background: #000; }
  #panel { width: 300px; flex: none; }
  h1 { font-size: 16px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  td, th { padding: 2px 6px; text-align: right; border-bottom: 1px solid #333; }
  td:first-child, th:first-child { text-align: left; }
  .big { font-size: 28px; font-weight: 600; color: #fff; }
  #state { color: #8c8; } #state.ended { color: #c88; }
</style>
</head>
<body>
<div id="view">
  <h1>{{TITLE}} <span id="state">live</span></h1>
  <img id="stream" src="stream.mjpg{{QUERY}}" alt="live stream">
</div>
<div id="panel">
  <div><span class="big" id="fps">{{FPS}}</span> FPS</div>
  <div>end-to-end latency p50 <b id="e2e">{{E2E}}</b> ms</div>
  <div>frames <b id="frames">{{FRAMES}}</b> · dropped <b id="dropped">{{DROPPED}}</b>
    · viewer skipped <b id="skipped">{{SKIPPED}}</b></div>
  <table id="stages"><thead><tr><th>stage</th><th>p50</th><th>p95</th><th>p99</th></tr></thead>
  <tbody>{{ROWS}}</tbody></table>
  <p id="info">{{INFO}}</p>
</div>
<script>
const $ = (id) => document.getElementById(id);
const ms = (v) => (v === undefined || v === null) ? "–" : v.toFixed(1);
async function poll() {
  try {
    const r = await fetch("stats.json{{QUERY}}", {cache: "no-store"});
    const s = await r.json();
    const live = s.live || {};
    $("fps").textContent = (live.fps || 0).toFixed(1);
    $("frames").textContent = s.frames ?? 0;
    $("dropped").textContent = s.dropped ?? 0;
    $("skipped").textContent = s.viewer.skipped;
    const stages = s.stages || {};
    $("e2e").textContent = ms(stages.e2e && stages.e2e.p50_ms);
    $("stages").tBodies[0].replaceChildren(...Object.entries(stages).map(([name, v]) => {
      const row = document.createElement("tr");
      for (const text of [name, ms(v.p50_ms), ms(v.p95_ms), ms(v.p99_ms)]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.appendChild(cell);
      }
      return row;
    }));
    $("info").textContent = Object.entries(s.info || {}).map(([k, v]) => `${k}: ${v}`).join(" · ");
    document.body.dataset.frames = s.frames ?? 0;
  } catch (e) {
    $("state").textContent = "ended"; $("state").className = "ended";
  }
}
poll(); setInterval(poll, 500);
</script>
</body>
</html>
"""
