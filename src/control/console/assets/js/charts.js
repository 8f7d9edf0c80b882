// Time-series charts (uPlot, vendored in /assets/vendor/uplot with its licence). Each chart has
// a data table under it for screen readers and copying.

import { h, clear } from './ui.js';

const COLORS = ['#1f5fbf', '#b3261e', '#1e6b34', '#7a5200', '#6b3fa0'];
const charts = new Set();

window.addEventListener('resize', () => {
  for (const c of charts) {
    if (!c.root.isConnected) { charts.delete(c); continue; }
    const w = c.root.parentElement?.clientWidth;
    if (w) c.setSize({ width: Math.max(260, w - 4), height: 220 });
  }
});

// `fields`: [[key or function of a point, label, format?]].
export function lineChart(el, title, series, fields, format = v => v == null ? '—' : Number(v).toLocaleString()) {
  const points = series.points || [];
  const xs = points.map(p => Date.parse(p.time) / 1000);
  const ys = fields.map(([k]) => points.map(p => typeof k === 'function' ? k(p) : p[k]));
  const plot = h('div', { role: 'img', 'aria-label': `${title}, ${points.length} points; the data table follows` });
  const rows = points.map((p, i) => h('tr', {}, h('td', {}, new Date(xs[i] * 1000).toLocaleString()),
    ys.map(y => h('td', { class: 'num' }, format(y[i])))));
  const data = h('details', {}, h('summary', {}, 'Data table'),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Time'), fields.map(f => h('th', { scope: 'col', class: 'num' }, f[1])))),
      h('tbody', {}, rows))));
  clear(el, h('h3', {}, title), plot, data);
  if (typeof window.uPlot !== 'function') {
    plot.append(h('p', { class: 'muted' }, 'The chart library did not load; see the data table.'));
    return;
  }
  const width = Math.max(260, (el.clientWidth || 600) - 20);
  const u = new window.uPlot({
    width, height: 220,
    scales: { x: { time: true } },
    series: [{}, ...fields.map((f, i) => ({ label: f[1], stroke: COLORS[i % COLORS.length], width: 2, value: (_, v) => format(v) }))],
    axes: [{}, { values: (_, vals) => vals.map(format), size: 70 }],
  }, [xs, ...ys], plot);
  charts.add(u);
}
