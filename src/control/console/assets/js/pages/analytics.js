import { get, qs } from '../api.js';
import { h, clear, pageHead, field, input, select, searchBar, table, fmtNum, fmtMs, errorBox, link } from '../ui.js';
import { lineChart } from '../charts.js';
import { isOperator } from '../app.js';

const RANGES = [['3600', 'last hour'], ['21600', 'last 6 hours'], ['86400', 'last 24 hours'], ['604800', 'last 7 days'], ['2592000', 'last 30 days'], ['7776000', 'last 90 days']];

export async function render(box, _params, query) {
  const f = {
    range: query.get('range') || '3600',
    service_id: query.get('service_id') || '',
    app_id: query.get('app_id') || '',
    tenant_id: query.get('tenant_id') || '',
  };
  const out = h('div', { id: 'analytics-out' });
  const bar = searchBar([
    field('Range', select('range', RANGES, f.range, { id: 'analytics-range' })),
    field('Service id', input('service_id', { value: f.service_id, id: 'analytics-service' })),
    field('App id', input('app_id', { value: f.app_id, id: 'analytics-app' })),
    isOperator() ? field('Tenant id', input('tenant_id', { value: f.tenant_id })) : null,
  ], v => { Object.assign(f, v); show(); });
  clear(box, ...pageHead('Traffic', 'Calls, errors and latency from the stored rollups; AI tokens and cost by model and app.'), bar, out);

  function filterLink(key, id, text) {
    return h('button', { type: 'button', class: 'link', onclick: () => {
      f[key] = id;
      bar.querySelector(`[name="${key}"]`).value = id;
      show();
    } }, text || id || '(config routes)');
  }

  async function show() {
    const to = Math.floor(Date.now() / 1000) + 1;
    const from = to - Number(f.range);
    const base = { from, to, service_id: f.service_id, app_id: f.app_id, tenant_id: f.tenant_id };
    clear(out, h('p', { class: 'muted' }, 'Loading…'));
    try {
      const [series, services, apps, errors, models, aiApps] = await Promise.all([
        get('/analytics/series' + qs(base)),
        get('/analytics/top' + qs({ ...base, by: 'service', limit: 10 })),
        get('/analytics/top' + qs({ ...base, by: 'app', limit: 10 })),
        get('/analytics/errors' + qs(base)),
        get('/analytics/top' + qs({ ...base, by: 'model', metric: 'tokens', limit: 10 })),
        get('/analytics/top' + qs({ ...base, by: 'app', metric: 'cost', limit: 10 })),
      ]);
      const total = series.points.reduce((a, p) => a + p.count, 0);
      const calls = h('div', { class: 'chart', id: 'chart-calls' });
      const latency = h('div', { class: 'chart', id: 'chart-latency' });
      const tokens = h('div', { class: 'chart', id: 'chart-tokens' });
      const topTable = (items, key, extra = []) => table([
        { title: key === 'service' ? 'Service' : 'App', render: i => key ? filterLink(key + '_id', i.id) : i.id },
        { title: 'Calls', num: true, render: i => fmtNum(i.count) },
        { title: 'Errors', num: true, render: i => fmtNum(i.errors) },
        { title: 'p99', num: true, render: i => fmtMs(i.latency_us.p99) },
        { title: 'Share', render: i => h('meter', { min: 0, max: Math.max(1, total), value: i.count, 'aria-label': `${i.count} of ${total}` }) },
        ...extra,
      ], items, 'No calls in this range.');
      clear(out,
        h('p', { id: 'analytics-total' }, `${fmtNum(total)} call(s) in the range, in steps of ${series.step_seconds / 60} min.`),
        calls, latency,
        h('div', { class: 'grid' },
          h('section', {}, h('h2', {}, 'Top services'), topTable(services.items, 'service')),
          h('section', {}, h('h2', {}, 'Top apps'), topTable(apps.items, 'app'))),
        h('h2', {}, 'Errors'),
        table([
          { title: 'Code', render: e => h('code', {}, e.code) },
          { title: 'Status class', render: e => e.class },
          { title: 'Calls', num: true, render: e => fmtNum(e.count) },
        ], errors.items, 'No errors in this range.'),
        h('h2', {}, 'AI'),
        tokens,
        h('div', { class: 'grid' },
          h('section', {}, h('h3', {}, 'Tokens and cost by model'), table([
            { title: 'Model', render: i => h('code', {}, i.id || '—') },
            { title: 'Input tokens', num: true, render: i => fmtNum(i.input_tokens) },
            { title: 'Output tokens', num: true, render: i => fmtNum(i.output_tokens) },
            { title: 'Cost (USD)', num: true, render: i => i.cost_usd.toFixed(4) },
          ], models.items.filter(i => i.id), 'No AI calls in this range.')),
          h('section', {}, h('h3', {}, 'Cost by app'), table([
            { title: 'App', render: i => filterLink('app_id', i.id) },
            { title: 'Tokens', num: true, render: i => fmtNum(i.input_tokens + i.output_tokens) },
            { title: 'Cost (USD)', num: true, render: i => i.cost_usd.toFixed(4) },
          ], aiApps.items.filter(i => i.input_tokens + i.output_tokens > 0), 'No AI calls in this range.'))),
        h('p', {}, link('#/calls' + qs({ service_id: f.service_id, app_id: f.app_id }), 'Search the call log for this selection')));
      lineChart(calls, 'Calls and errors', series, [['count', 'calls'], ['errors', 'errors']]);
      lineChart(latency, 'Latency (ms)', series, [[p => p.latency_us.p50 / 1000, 'p50'], [p => p.latency_us.p95 / 1000, 'p95'], [p => p.latency_us.p99 / 1000, 'p99']],
        v => v == null ? '—' : Number(v).toFixed(2));
      lineChart(tokens, 'AI tokens', series, [['input_tokens', 'input'], ['output_tokens', 'output']]);
    } catch (e) {
      clear(out, errorBox(e));
    }
  }
  show();
}
