// Stats: GET /v1/console/memories/stats as charts.

import { core } from "./api.js";
import { Bars, Columns, Loaded, Truncated, fmtNum, fmtScore, html, rowsOf, useLoad } from "./ui.js";

// Days with memories, oldest first; months once there are too many days for bars.
function overTime(byDay) {
  const days = Object.entries(byDay || {}).sort(([a], [b]) => a.localeCompare(b));
  if (days.length <= 60) return days.map(([label, value]) => ({ label, value }));
  const months = {};
  for (const [day, n] of days) months[day.slice(0, 7)] = (months[day.slice(0, 7)] || 0) + n;
  return Object.entries(months).map(([label, value]) => ({ label, value }));
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
