// Stats: GET /v1/console/memories/stats as charts.

import { core } from "./api.js";
import { Bars, Columns, Loaded, Truncated, fmtNum, fmtScore, html, rowsOf, useLoad } from "./ui.js";

// Every day from the first memory's to the last one's (days without any
// count 0, so the axis is time); months once there are too many days for bars.
function overTime(byDay) {
  const days = Object.keys(byDay || {}).sort();
  if (days.length === 0) return [];
  const day = (d) => d.toISOString().slice(0, 10);
  const first = new Date(`${days[0]}T00:00:00Z`);
  const last = new Date(`${days[days.length - 1]}T00:00:00Z`);
  if (Number.isNaN(first.getTime()) || Number.isNaN(last.getTime())) return days.map((d) => ({ label: d, value: byDay[d] }));
  const span = Math.round((last - first) / 86400000) + 1;
  const rows = [];
  for (let i = 0; i < span; i++) {
    const d = day(new Date(first.getTime() + i * 86400000));
    rows.push({ label: d, value: byDay[d] || 0 });
  }
  if (rows.length <= 60) return rows;
  const months = new Map();
  for (const r of rows) months.set(r.label.slice(0, 7), (months.get(r.label.slice(0, 7)) || 0) + r.value);
  return [...months].map(([label, value]) => ({ label, value }));
}

export function StatsView() {
  const state = useLoad(() => core("/console/memories/stats"), []);
  return html`<h1>Stats</h1>
    <${Loaded} state=${state} what="stats">${(s) => html`
      <${Truncated} truncated=${s.truncated} />
      <dl class="tiles">
        <div><dt>Memories</dt><dd>${fmtNum(s.total_memories)}</dd></div>
        <div><dt>Active</dt><dd>${fmtNum(s.active_memories)}</dd></div>
        <div><dt>Average confidence</dt><dd>${fmtScore(s.avg_confidence)}</dd></div>
        <div><dt>Average strength</dt><dd>${fmtScore(s.avg_strength)}</dd></div>
      </dl>
      <div class="grid">
        <${Bars} title="By type" rows=${rowsOf(s.by_type)} />
        <${Bars} title="By kind" rows=${rowsOf(s.by_kind)} />
        <${Bars} title="By status" rows=${rowsOf(s.by_status)} />
        <${Bars} title="By confidence" rows=${s.confidence_buckets.map((b) => ({ label: b.range, value: b.count }))} />
        <${Columns} title="Memories over time (by day observed)" rows=${overTime(s.by_day)} />
        <${Bars} title="Top entities" rows=${s.top_entities.map((e) => ({ label: `${e.name} (${e.type})`, value: e.count }))} />
      </div>
    `}<//>`;
}
