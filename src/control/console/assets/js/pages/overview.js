import { get, qs } from '../api.js';
import { h, clear, pageHead, fmtNum, fmtMs, link, errorBox } from '../ui.js';
import { can, session } from '../app.js';
import { lineChart } from '../charts.js';

export async function render(box) {
  const who = session.me.kind === 'operator' ? 'the whole node' : 'your tenant';
  clear(box, ...pageHead('Overview', `The last 24 hours of ${who}.`));
  const cards = h('div', { class: 'cards' });
  const chart = h('div', { class: 'chart' });
  const pending = h('div', {});
  box.append(cards, chart, pending);
  try {
    const from = Math.floor(Date.now() / 1000) - 86400;
    const [series, tops] = await Promise.all([
      get('/analytics/series' + qs({ from, step: '1h' })),
      get('/analytics/top' + qs({ from, by: 'service', limit: 5 })),
    ]);
    const t = series.points.reduce((a, p) => ({ count: a.count + p.count, errors: a.errors + p.errors }), { count: 0, errors: 0 });
    const worst = Math.max(0, ...series.points.map(p => p.latency_us.p99));
    clear(cards,
      card('Calls', fmtNum(t.count)),
      card('Errors', fmtNum(t.errors) + (t.count ? ` (${(100 * t.errors / t.count).toFixed(1)}%)` : '')),
      card('Worst hourly p99', fmtMs(worst)),
      card('Top service', tops.items[0] ? tops.items[0].id || '(config routes)' : '—'));
    lineChart(chart, 'Calls per hour', series, [['count', 'calls'], ['errors', 'errors']]);
  } catch (e) {
    clear(cards, errorBox(e));
  }
  if (can('govern')) {
    try {
      const subs = await get('/subscriptions' + qs({ state: 'pending', side: 'provider', limit: 100 }));
      const n = subs.items.length;
      clear(pending, h('div', { class: n ? 'alert warn' : 'alert ok' },
        n ? [`${n}${subs.next_cursor ? '+' : ''} access request(s) wait for approval. `, link('#/subscriptions', 'Open the inbox')]
          : 'No access requests wait for approval.'));
    } catch (e) { clear(pending, errorBox(e)); }
  }
}

function card(title, value) {
  return h('div', { class: 'card' }, h('div', { class: 'muted' }, title), h('div', { class: 'n' }, value));
}
