"""The Datasets page of the Airflow plugin: one static HTML document that renders the JSON API."""

from __future__ import annotations

DATASETS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Datasets · dataops</title>
<style>
  :root { color-scheme: light dark; --line: #d0d7de; --muted: #6e7781; --ok: #1a7f37; --bad: #cf222e; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.2rem 1.6rem; }
  h1 { font-size: 1.35rem; margin: 0 0 .2rem; }
  h2 { font-size: 1.1rem; margin: 1.4rem 0 .4rem; }
  h3 { font-size: .95rem; margin: 1rem 0 .3rem; }
  .muted { color: var(--muted); }
  table { border-collapse: collapse; margin: .3rem 0 .8rem; }
  th, td { border-bottom: 1px solid var(--line); padding: .3rem .7rem; text-align: left; vertical-align: top; }
  th { font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.version { cursor: pointer; }
  tr.version:hover, tr.selected { background: rgba(127,127,127,.12); }
  code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
  pre { border: 1px solid var(--line); padding: .6rem; max-height: 22rem; overflow: auto; }
  .ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
  #error { color: var(--bad); }
</style>
</head>
<body>
<h1>Datasets</h1>
<div class="muted">Versions published by the <code>dataset_pipeline</code> DAG: git tags <code>&lt;dataset&gt;-v&lt;major&gt;.&lt;build&gt;</code>,
data in the DVC remote. Click a version for its schema, splits, shards and params. JSON: <a href="api/versions">api/versions</a>.</div>
<div id="error"></div>
<table id="versions">
  <thead><tr><th>Tag</th><th>Commit</th><th>Date</th><th>Examples per split</th><th>Bytes</th><th>Validation</th><th>Fingerprint</th></tr></thead>
  <tbody><tr><td colspan="7" class="muted">loading…</td></tr></tbody>
</table>
<div id="detail"></div>
<script>
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const fmtBytes = (n) => n >= 1048576 ? (n / 1048576).toFixed(2) + " MiB" : n >= 1024 ? (n / 1024).toFixed(1) + " KiB" : n + " B";
const splits = (d) => Object.entries(d || {}).map(([k, v]) => esc(k) + "&nbsp;" + esc(v)).join(", ");
const verdict = (ok) => ok === true ? '<span class="ok">passed</span>' : ok === false ? '<span class="bad">failed</span>' : '<span class="muted">unknown</span>';
async function getJSON(url) {
  const r = await fetch(url, {credentials: "same-origin"});
  if (!r.ok) throw new Error(url + ": HTTP " + r.status + " " + (await r.text()));
  return r.json();
}
async function showVersion(tag, row) {
  document.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
  if (row) row.classList.add("selected");
  const el = document.getElementById("detail");
  el.innerHTML = '<p class="muted">loading ' + esc(tag) + "…</p>";
  try {
    const d = await getJSON("api/versions/" + encodeURIComponent(tag));
    let h = "<h2>" + esc(d.tag) + ' <span class="muted">' + esc(d.commit.slice(0, 12)) + "</span></h2>";
    h += "<div>" + esc(d.subject) + "</div>";
    if (d.violations && d.violations.length) h += '<pre class="bad">' + d.violations.map(esc).join("\\n") + "</pre>";
    if (!d.metadata_available) {
      h += '<p class="muted">' + esc(d.metadata_note) + "</p>";
    } else {
      h += "<h3>Schema</h3><table><thead><tr><th>Feature</th><th>Kind</th><th>Dtype</th><th>Shape</th><th>Encoding</th><th>Classes</th></tr></thead><tbody>";
      for (const f of d.features) h += "<tr><td><code>" + esc(f.name) + "</code></td><td>" + esc(f.kind) + "</td><td>" + esc(f.dtype) + "</td><td>" + esc(JSON.stringify(f.shape)) + "</td><td>" + esc(f.encoding) + "</td><td>" + esc(f.num_classes ?? "") + "</td></tr>";
      h += "</tbody></table><h3>Splits and shards</h3><table><thead><tr><th>Split</th><th>Shard</th><th>Examples</th><th>Bytes</th><th>sha256</th></tr></thead><tbody>";
      for (const s of d.splits) {
        h += '<tr><td><b>' + esc(s.name) + '</b></td><td class="muted">' + s.shards.length + ' shard(s)</td><td class="num">' + esc(s.num_examples) + '</td><td class="num">' + fmtBytes(s.num_bytes) + "</td><td></td></tr>";
        for (const sh of s.shards) h += "<tr><td></td><td><code>" + esc(sh.file) + '</code></td><td class="num">' + esc(sh.num_examples) + '</td><td class="num">' + fmtBytes(sh.num_bytes) + "</td><td><code>" + esc(sh.sha256.slice(0, 16)) + "…</code></td></tr>";
      }
      h += "</tbody></table><div class='muted'>compression: " + esc(d.compression) + "</div>";
    }
    h += "<h3>Params (params.yaml at " + esc(d.tag) + ")</h3><pre>" + esc(JSON.stringify(d.params, null, 2)) + "</pre>";
    el.innerHTML = h;
  } catch (e) { el.innerHTML = '<p class="bad">' + esc(e.message) + "</p>"; }
}
async function main() {
  const body = document.querySelector("#versions tbody");
  try {
    const data = await getJSON("api/versions");
    if (!data.versions.length) {
      body.innerHTML = '<tr><td colspan="7" class="muted">No published versions yet in ' + esc(data.workspace) + ". Trigger the <code>dataset_pipeline</code> DAG.</td></tr>";
      return;
    }
    body.innerHTML = data.versions.map((v) =>
      '<tr class="version" data-tag="' + esc(v.tag) + '"><td><b>' + esc(v.tag) + "</b></td><td><code>" + esc(v.commit.slice(0, 12)) + "</code></td><td>" +
      esc(v.date.replace("T", " ")) + "</td><td>" + splits(v.num_examples) + '</td><td class="num">' + fmtBytes(v.num_bytes) + "</td><td>" + verdict(v.ok) +
      "</td><td><code>" + esc((v.fingerprint || "").slice(0, 12)) + "</code></td></tr>").join("");
    body.querySelectorAll("tr.version").forEach((r) => r.addEventListener("click", () => showVersion(r.dataset.tag, r)));
    const first = body.querySelector("tr.version");
    showVersion(first.dataset.tag, first);
  } catch (e) {
    body.innerHTML = "";
    document.getElementById("error").textContent = e.message;
  }
}
main();
</script>
</body>
</html>
"""
