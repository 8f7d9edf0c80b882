import { get, qs } from '../api.js';
import { h, clear, pageHead, field, input, select, searchBar, table, link, errorBox, kv } from '../ui.js';

const RANGES = [['3600', 'last hour'], ['86400', 'last 24 hours'], ['604800', 'last 7 days'], ['2592000', 'last 30 days'], ['7776000', 'last 90 days']];

function when(r) { return r.time ? new Date(r.time).toLocaleString() : ''; }

export async function list(box, _p, query) {
  const f = { range: '86400', service_id: query.get('service_id') || '', app_id: query.get('app_id') || '', status: '', request_id: '' };
  const out = h('div', {});
  clear(box, ...pageHead('Call log', 'Single calls from the call log, newest first.'),
    searchBar([
      field('Range', select('range', RANGES, f.range)),
      field('Service id', input('service_id', { value: f.service_id })),
      field('App id', input('app_id', { value: f.app_id })),
      field('Status', input('status', { inputmode: 'numeric', maxlength: 3 })),
      field('Request id', input('request_id', { id: 'calls-request-id' })),
    ], v => { Object.assign(f, v); show(); }),
    out);
  async function show() {
    const to = Math.floor(Date.now() / 1000) + 1;
    clear(out, h('p', { class: 'muted' }, 'Searching…'));
    try {
      const found = await get('/analytics/calls' + qs({ from: to - Number(f.range), to, service_id: f.service_id, app_id: f.app_id, status: f.status, request_id: f.request_id, limit: 100 }));
      clear(out,
        found.truncated ? h('div', { class: 'alert warn' }, 'The search stopped at its read limit: narrow the range.') : null,
        table([
          { title: 'Time', render: r => when(r) },
          { title: 'Request', render: r => link('#/calls/' + encodeURIComponent(r.request_id), r.request_id) },
          { title: 'Method', render: r => r.method },
          { title: 'Path', render: r => h('code', {}, r.path) },
          { title: 'Status', num: true, render: r => String(r.status ?? '—') },
          { title: 'Latency', num: true, render: r => r.latency_us !== undefined ? `${(r.latency_us / 1000).toFixed(2)} ms` : '' },
          { title: 'Service', render: r => r.service || '' },
          { title: 'App', render: r => r.app || '' },
        ], found.items, 'No calls match.'));
    } catch (e) { clear(out, errorBox(e)); }
  }
  show();
}

export async function one(box, { rid }) {
  const to = Math.floor(Date.now() / 1000) + 1;
  const found = await get('/analytics/calls' + qs({ request_id: rid, from: to - 90 * 86400, to, limit: 1 }));
  const r = found.items[0];
  if (!r) { clear(box, ...pageHead('Call ' + rid), h('p', {}, 'Not in the call log (it may have aged out).')); return; }
  clear(box, ...pageHead('Call ' + rid, null),
    h('div', { class: 'panel' }, kv(Object.entries(r).filter(([, v]) => typeof v !== 'object').map(([k, v]) => [k, String(v)]))),
    h('h2', {}, 'The whole record'),
    h('pre', { id: 'call-record' }, JSON.stringify(r, null, 2)));
}

export { errorBox };
