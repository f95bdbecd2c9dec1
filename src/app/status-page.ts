/**
 * `GET /status`: a live page (connections per process, RSS, heap, loop delay, req/s, p99,
 * refused upgrades, the runtime memory settings) that polls `/status.json` every second. Plain HTML and a few lines of
 * script in one string: nothing to build, light enough to leave open.
 */
export const STATUS_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>onebox status</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#111;background:#fafafa}
h1{font-size:1.2rem;margin:0 0 1rem}
.cards{display:flex;flex-wrap:wrap;gap:.75rem;margin-bottom:1.5rem}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6rem .9rem;min-width:9rem}
.card b{display:block;font-size:1.4rem;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:.3rem .7rem;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f0f0}#err{color:#b00}small{color:#666}
</style></head><body>
<h1>onebox <small id="meta"></small></h1>
<div class="cards">
<div class="card">connections<b id="connections">–</b></div>
<div class="card">requests/s<b id="rps">–</b></div>
<div class="card">p99 (ms, last s)<b id="p99">–</b></div>
<div class="card">RSS (MB)<b id="rss">–</b></div>
<div class="card">heap used (MB)<b id="heap">–</b></div>
<div class="card">loop delay p99 (ms)<b id="loop">–</b></div>
<div class="card">refused upgrades<b id="refused">–</b></div>
</div>
<table><thead><tr><th>process</th><th>pid</th><th>connections</th><th>RSS (MB)</th><th>heap (MB)</th><th>req/s</th><th>p99 (ms)</th></tr></thead>
<tbody id="procs"></tbody></table>
<p id="err"></p>
<script>
const $ = (id) => document.getElementById(id);
const mb = (b) => (b / 1048576).toFixed(1);
const token = new URLSearchParams(location.search).get('admin');
async function tick() {
  try {
    const r = await fetch('/status.json', token ? { headers: { authorization: 'Bearer ' + token } } : {});
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const s = await r.json();
    const rt = s.runtime;
    $('meta').textContent = s.engine + ' · ' + s.processes.length + ' process(es) · up ' + Math.round(s.uptimeS) + ' s · heap bound ' +
      (rt.heapLimitBytes === null ? 'runtime default' : mb(rt.heapLimitBytes) + ' MB') + (rt.semiSpaceMb ? ' · semi-space ' + rt.semiSpaceMb + ' MB' : '') + (rt.smol ? ' · --smol' : '');
    $('connections').textContent = s.total.connections;
    $('rps').textContent = s.total.rps;
    $('p99').textContent = s.total.p99Ms.toFixed(2);
    $('rss').textContent = mb(s.total.rssBytes);
    $('heap').textContent = mb(s.total.heapBytes);
    $('loop').textContent = s.loopDelayP99Ms.toFixed(2);
    $('refused').textContent = s.refusedUpgrades;
    $('procs').innerHTML = s.processes.map((p) => '<tr><td>' + p.name + '</td><td>' + p.pid + '</td><td>' + p.connections +
      '</td><td>' + mb(p.rssBytes) + '</td><td>' + mb(p.heapBytes) + '</td><td>' + p.rps + '</td><td>' + p.p99Ms.toFixed(2) + '</td></tr>').join('');
    $('err').textContent = '';
  } catch (e) { $('err').textContent = 'status unavailable: ' + e.message; }
}
tick(); setInterval(tick, 1000);
</script></body></html>
`;
