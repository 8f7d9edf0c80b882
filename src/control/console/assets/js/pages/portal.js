import { get, post, qs } from '../api.js';
import { h, clear, pageHead, field, input, select, textarea, form, pagedTable, searchBar, link, time, toast, badge, kv, errorBox } from '../ui.js';
import { can, myTenant, isOperator } from '../app.js';
import { renderOpenApi } from '../openapi.js';
import { STATE_MEANING } from './services.js';

export async function catalog(box) {
  const filters = { q: '', state: 'published' };
  const tbl = pagedTable([
    { title: 'API', render: s => link('#/portal/services/' + encodeURIComponent(s.id), s.name) },
    { title: 'Owner', render: s => s.tenant_id === myTenant() ? 'your tenant' : h('code', {}, s.tenant_id) },
    { title: 'State', render: s => badge(s.state) },
    { title: 'Access', render: s => s.approval === 'auto' ? 'instant' : 'on approval' },
    { title: 'Docs', render: s => s.has_openapi ? 'yes' : '—' },
    { title: 'Base path', render: s => h('code', {}, s.routes.map(r => r.path_prefix || r.path_exact).join(', ')) },
  ], cursor => get('/services' + qs({ ...filters, cursor, limit: 25 })), 'No APIs match.');
  clear(box, ...pageHead('API catalog', 'The APIs your tenant can use: its own, and every tenant\'s public ones.'),
    searchBar([
      field('Search APIs', input('q', { type: 'search', id: 'catalog-search', placeholder: 'name' })),
      field('State', select('state', [['published', 'published'], ['deprecated', 'deprecated']], 'published')),
    ], v => { Object.assign(filters, v); tbl.reload(); }),
    tbl);
}

export async function service(box, { id }) {
  const path = '/services/' + encodeURIComponent(id);
  const s = await get(path);
  let doc = null;
  if (s.has_openapi) { try { doc = await get(path + '/openapi.json'); } catch { doc = null; } }
  const access = h('div', { id: 'request-access' });
  const mine = h('div', {});
  const tryit = h('div', { id: 'try-it' });
  clear(box, ...pageHead(s.name, null),
    h('p', {}, badge(s.state), ' ', STATE_MEANING[s.state] || ''),
    h('div', { class: 'panel' }, kv([
      ['Base paths', s.routes.map(r => r.path_prefix || r.path_exact).join(', ')],
      ['Credentials', s.credentials.join(', ')],
      ['Access', s.approval === 'auto' ? 'granted at once' : 'approved by the API\'s owner'],
      ['Quota', s.quota ? Object.entries(s.quota).map(([k, v]) => `${v} ${k.replace('per_', 'per ')}`).join(', ') : 'none'],
      s.sunset_at ? ['Sunset', time(s.sunset_at)] : null,
    ])),
    h('h2', {}, 'Access'), access, mine,
    h('h2', {}, 'Try it'), tryit,
    h('h2', {}, 'Documentation'),
    doc ? renderOpenApi(doc) : h('p', { class: 'muted' }, 'The owner has not published an OpenAPI document.'));
  accessPanel(access, mine, s);
  tryPanel(tryit, s);
}

function accessPanel(box, mineBox, s) {
  const subs = pagedTable([
    { title: 'App', render: x => link('#/apps/' + encodeURIComponent(x.app_id), x.app_name || x.app_id) },
    { title: 'State', render: x => badge(x.state) },
    { title: 'Reason', render: x => x.reason || '' },
    { title: 'Since', render: x => time(x.updated_at) },
  ], cursor => get('/subscriptions' + qs({ service_id: s.id, side: 'consumer', cursor, limit: 20 })), 'None of your apps has asked for access yet.');
  clear(mineBox, h('h3', {}, 'Your apps\' requests'), subs);
  if (!can('develop')) { clear(box, h('p', { class: 'muted' }, 'Your role cannot request access (developers and above can).')); return; }
  if (s.state !== 'published') { clear(box, h('p', { class: 'muted' }, 'Only a published API takes new requests.')); return; }
  const appSelect = select('app_id', [], undefined, { id: 'access-app', required: true });
  const appSearch = input('app_q', { type: 'search', id: 'access-app-search', placeholder: 'filter your apps by name' });
  async function loadApps() {
    const apps = await get('/apps' + qs({ q: appSearch.value || undefined, tenant_id: isOperator() ? undefined : myTenant(), limit: 50 }));
    clear(appSelect, apps.items.map(a => h('option', { value: a.id }, a.name)));
  }
  appSearch.addEventListener('input', () => loadApps().catch(() => {}));
  const f = form([h('div', { class: 'row' },
      field('Find an app', appSearch),
      field('App', appSelect, h('span', {}, 'No app yet? ', link('#/apps', 'Create one'), '.')))],
    'Request access', async v => {
      if (!v.app_id) throw Object.assign(new Error('Choose an app'), { fields: { app_id: 'required' } });
      const sub = await post('/subscriptions', { app_id: v.app_id, service_id: s.id });
      toast(sub.state === 'approved' ? 'Access granted' : 'Request sent: it waits for the owner\'s approval');
      subs.reload();
    }, { id: 'access-form' });
  clear(box, f);
  loadApps().catch(e => clear(box, errorBox(e)));
}

function tryPanel(box, s) {
  const first = s.routes[0] || {};
  const base = first.path_prefix || first.path_exact || '/';
  const result = h('div', { id: 'try-result', 'aria-live': 'polite' });
  // Calls that may change the API's data are for developers and above (the API checks too).
  const methods = can('develop') ? ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] : ['GET', 'HEAD', 'OPTIONS'];
  const f = form([
    h('div', { class: 'row' },
      field('Method', select('method', methods, 'GET', { id: 'try-method' })),
      field('Path', input('path', { value: base, required: true, id: 'try-path' }))),
    field('API key', input('key', { type: 'password', autocomplete: 'off', id: 'try-key' }),
      'One of your app\'s keys (sent as Authorization: Bearer). Keys are shown once when made: paste it here.'),
    field('Headers (one "Name: value" per line)', textarea('headers', { id: 'try-headers', placeholder: 'Content-Type: application/json' })),
    field('Body', textarea('body', { id: 'try-body' })),
  ], 'Send', async v => {
    const headers = [];
    v.headers.split('\n').map(l => l.trim()).filter(Boolean).forEach((l, i) => {
      const at = l.indexOf(':');
      if (at < 1) throw Object.assign(new Error(`header line ${i + 1} is not "Name: value"`), { fields: { headers: 'not "Name: value"' } });
      headers.push([l.slice(0, at).trim(), l.slice(at + 1).trim()]);
    });
    clear(result, h('p', { class: 'muted' }, 'Sending…'));
    const r = await post(`/services/${encodeURIComponent(s.id)}/try`, {
      method: v.method, path: v.path, headers, key: v.key || undefined, body: v.body || undefined,
    });
    clear(result,
      h('p', {}, 'Status ', h('strong', { id: 'try-status' }, String(r.status)), ` in ${r.duration_ms.toFixed(1)} ms; request id `,
        h('a', { href: '#/calls/' + encodeURIComponent(r.request_id), id: 'try-request-id' }, r.request_id), ' (in the call log)'),
      h('details', {}, h('summary', {}, 'Response headers'), h('pre', {}, r.headers.map(([k, val]) => `${k}: ${val}`).join('\n'))),
      h('pre', { id: 'try-body-out' }, pretty(r.body)),
      r.truncated ? h('p', { class: 'muted' }, 'The body was cut at 256 KiB.') : null);
  }, { id: 'try-form' });
  clear(box, h('div', { class: 'panel' }, f, result));
}

function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

export async function requests(box) {
  const filters = { state: '' };
  const tbl = pagedTable([
    { title: 'App', render: x => x.app_tenant_id === myTenant() || isOperator() ? link('#/apps/' + encodeURIComponent(x.app_id), x.app_name || x.app_id) : (x.app_name || x.app_id) },
    { title: 'API', render: x => link('#/portal/services/' + encodeURIComponent(x.service_id), x.service_name || x.service_id) },
    { title: 'State', render: x => badge(x.state) },
    { title: 'Reason', render: x => x.reason || '' },
    { title: 'Requested', render: x => time(x.created_at) },
    { title: 'Updated', render: x => time(x.updated_at) },
  ], cursor => get('/subscriptions' + qs({ ...filters, side: 'consumer', cursor, limit: 50 })), 'No requests yet: find an API in the catalog.');
  clear(box, ...pageHead('Access requests', 'The state of each request your tenant\'s apps have made.'),
    searchBar([field('State', select('state', [['', 'any'], 'pending', 'approved', 'rejected', 'revoked', 'cancelled'], ''))], v => { filters.state = v.state; tbl.reload(); }),
    tbl);
}
