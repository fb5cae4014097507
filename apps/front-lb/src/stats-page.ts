/**
 * The small HTML stats page of the admin listener (/stats): the status JSON embedded at render
 * time, drawn by a script, then refreshed from /status every `refreshMs`.
 */

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;min-width:60em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;white-space:nowrap}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.up td.state{background:#c8f0c8}tr.down td.state{background:#f6c4c4}
tr.ejected td.state{background:#f8e0a8}tr.removed td.state{background:#ddd}
.panic{color:#b00;font-weight:bold}.meta{color:#666}
`;

const SCRIPT = `
(function(){
  function fmtBytes(n){var u=["B","KiB","MiB","GiB","TiB"],i=0;while(n>=1024&&i<u.length-1){n/=1024;i++}return (i?n.toFixed(1):n)+" "+u[i]}
  function td(text,cls){var e=document.createElement("td");e.textContent=text;if(cls)e.className=cls;return e}
  function render(s){
    var root=document.getElementById("listeners");
    root.textContent="";
    document.getElementById("updated").textContent="updated "+new Date().toLocaleTimeString()+" · up since "+s.startedAt;
    s.listeners.forEach(function(l){
      var h=document.createElement("h2");
      h.textContent=l.name+" — "+l.address+" · "+l.balance+" · check "+l.healthCheck+" · "+l.activeConnections+" active / "+l.totalConnections+" total";
      if(l.panic){var p=document.createElement("span");p.className="panic";p.textContent=" PANIC: no healthy endpoint";h.appendChild(p)}
      root.appendChild(h);
      var t=document.createElement("table");t.setAttribute("data-listener",l.name);
      var hr=document.createElement("tr");
      ["endpoint","state","source","weight","active","total","connect failures","bytes in","bytes out","last check"].forEach(function(c){var th=document.createElement("th");th.textContent=c;hr.appendChild(th)});
      t.appendChild(hr);
      l.endpoints.forEach(function(e){
        var tr=document.createElement("tr");tr.className=e.state;tr.setAttribute("data-endpoint",e.key);
        var c=e.lastCheck;
        tr.appendChild(td(e.key));tr.appendChild(td(e.state,"state"));tr.appendChild(td(e.source));
        tr.appendChild(td(String(e.weight),"n"));tr.appendChild(td(String(e.activeConnections),"n"));
        tr.appendChild(td(String(e.totalConnections),"n"));tr.appendChild(td(String(e.connectFailures),"n"));
        tr.appendChild(td(fmtBytes(e.bytesToUpstream),"n"));tr.appendChild(td(fmtBytes(e.bytesToDownstream),"n"));
        tr.appendChild(td(c?((c.ok?"ok":"failed")+(c.status?" "+c.status:"")+(c.error&&!c.ok?" ("+c.error+")":"")+" in "+c.latencyMs.toFixed(1)+" ms"):"—"));
        t.appendChild(tr);
      });
      root.appendChild(t);
      if(l.discovery){var d=document.createElement("p");d.className="meta";d.textContent="discovery "+l.discovery.service+": "+l.discovery.source+(l.discovery.connected?" (watching)":" (not connected)")+(l.discovery.lastError?" — "+l.discovery.lastError:"");root.appendChild(d)}
    });
  }
  var initial=JSON.parse(document.getElementById("initial-status").textContent);
  render(initial);
  var refresh=Number(document.body.getAttribute("data-refresh-ms"));
  if(refresh>0)setInterval(function(){fetch("status",{cache:"no-store"}).then(function(r){return r.json()}).then(render).catch(function(){})},refresh);
})();
`;

/** The page for a status object; the JSON is embedded safely (no "</script>" breakout). */
export function renderStatsPage(status: unknown, refreshMs = 2000): string {
  const json = JSON.stringify(status)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>front-lb stats</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>${STYLE}</style></head>
<body data-refresh-ms="${Math.max(0, Math.floor(refreshMs))}">
<h1>front-lb</h1><div id="updated" class="meta"></div>
<div id="listeners"><noscript>This page needs JavaScript; the same data is at <a href="status">/status</a>.</noscript></div>
<script type="application/json" id="initial-status">${json}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
