import { get, post, put, del, qs, all } from '../api.js';
import { h, clear, pageHead, field, input, select, textarea, form, pagedTable, searchBar, link, time, kv, confirm, toast, badge, table } from '../ui.js';
import { can, isOperator, myTenant, go } from '../app.js';
import { renderOpenApi } from '../openapi.js';

export const STATE_MEANING = {
  draft: 'Being built: not served by the gateway, and only its own tenant sees it. Its developers may change it freely.',
  published: 'Served: apps with an approved subscription call it. A public service is in every tenant\'s catalog.',
  deprecated: 'Still served, with Deprecation and Sunset headers on every answer; it takes no new subscriptions.',
  retired: 'No longer served: callers get 410 Gone. A retired service can be deleted.',
};

export async function list(box) {
  const filters = { q: '', state: '', visibility: '' };
  const tbl = pagedTable([
    { title: 'Name', render: s => link('#/services/' + encodeURIComponent(s.id), s.name) },
    { title: 'State', render: s => badge(s.state) },
    { title: 'Visibility', render: s => s.visibility },
    { title: 'Approval', render: s => s.approval },
    { title: 'Routes', render: s => s.routes.map(r => r.path_prefix || r.path_exact).join(', ') },
    { title: 'Tenant', render: s => h('code', {}, s.tenant_id) },
    { title: 'Updated', render: s => time(s.updated_at) },
  ], cursor => get('/services' + qs({ ...filters, cursor, limit: 50 })), 'No services match.');
  clear(box, ...pageHead('Services', 'APIs of your tenant, and other tenants\' public ones.'),
    can('develop') ? h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/services/new', id: 'new-service' }, 'New service')) : null,
    searchBar([
      field('Search by name', input('q', { type: 'search', id: 'service-search' })),
      field('State', select('state', [['', 'any'], 'draft', 'published', 'deprecated', 'retired'], '')),
      field('Visibility', select('visibility', [['', 'any'], 'private', 'public'], '')),
    ], v => { Object.assign(filters, v); tbl.reload(); }),
    tbl);
}

function serviceFields(s, tenants) {
  const v = s || {};
  return [
    tenants ? field('Tenant', select('tenant_id', tenants.map(t => [t.id, t.name]), tenants[0]?.id, { id: 'service-tenant' })) : null,
    h('div', { class: 'row' },
      field('Name', input('name', { required: true, value: v.name || '', id: 'service-name' })),
      field('Visibility', select('visibility', [['private', 'private (this tenant only)'], ['public', 'public (every tenant\'s catalog)']], v.visibility || 'private', { id: 'service-visibility' })),
      field('Approval', select('approval', [['manual', 'manual (an admin approves each app)'], ['auto', 'auto']], v.approval || 'manual', { id: 'service-approval' }))),
    h('fieldset', {}, h('legend', {}, 'Credentials apps may call with'),
      h('div', { class: 'row' }, ['api_key', 'jwt', 'basic', 'hmac'].map(c => h('label', {},
        h('input', { type: 'checkbox', name: 'cred_' + c, checked: (v.credentials || ['api_key']).includes(c) }), ' ', c)))),
    field('Routes (JSON)', textarea('routes', { value: JSON.stringify(v.routes || [{ path_prefix: '/my-api' }], null, 2), id: 'service-routes' }),
      'A list of {"path_prefix" or "path_exact", "methods"?, "hosts"?, "strip_prefix"?, "rewrite_prefix"?}.'),
    field('Upstream (JSON)', textarea('upstream', { value: v.upstream === undefined ? JSON.stringify({ targets: ['127.0.0.1:8080'] }, null, 2) : (v.upstream === null ? '' : JSON.stringify(v.upstream, null, 2)), id: 'service-upstream' }),
      'The fields of a config file\'s [upstreams.NAME] table: targets, balance, timeouts, tls, health_check, ... Empty for an AI service.'),
    field('AI (JSON, optional)', textarea('ai', { value: v.ai ? JSON.stringify(v.ai, null, 2) : '', id: 'service-ai' }),
      'An AI service instead of an upstream: {"models": ["alias", ...]} over the [ai] providers.'),
    h('div', { class: 'row' },
      field('Quota per second', input('per_second', { type: 'number', min: 1, value: v.quota?.per_second ?? '' })),
      field('per minute', input('per_minute', { type: 'number', min: 1, value: v.quota?.per_minute ?? '' })),
      field('per day', input('per_day', { type: 'number', min: 1, value: v.quota?.per_day ?? '' }))),
    field('OpenAPI document (JSON, optional)', textarea('openapi', { id: 'service-openapi', value: v.openapiText || '' }),
      'Shown to developers in the portal as the API\'s docs.'),
  ];
}

function parseJson(name, text, empty) {
  if (!text.trim()) return empty;
  try { return JSON.parse(text); } catch (e) {
    throw Object.assign(new Error(`${name} is not JSON: ${e.message}`), { fields: { [name]: 'not JSON' } });
  }
}

function body(v) {
  const quota = {};
  for (const k of ['per_second', 'per_minute', 'per_day']) if (v[k]) quota[k] = Number(v[k]);
  const ai = parseJson('ai', v.ai, undefined);
  return {
    name: v.name,
    visibility: v.visibility,
    approval: v.approval,
    credentials: ['api_key', 'jwt', 'basic', 'hmac'].filter(c => v['cred_' + c]),
    routes: parseJson('routes', v.routes, []),
    upstream: parseJson('upstream', v.upstream, null),
    ai,
    quota: Object.keys(quota).length ? quota : undefined,
    openapi: parseJson('openapi', v.openapi, undefined),
  };
}

export async function create(box) {
  const tenants = isOperator() ? await all('/tenants') : null;
  if (tenants && !tenants.length) { clear(box, ...pageHead('New service'), h('p', {}, 'Create a tenant first.')); return; }
  const f = form(serviceFields(null, tenants), 'Create draft', async v => {
    const s = await post('/services', { tenant_id: tenants ? v.tenant_id : myTenant(), ...body(v) });
    toast(`Service ${s.name} created as a draft`);
    go('#/services/' + encodeURIComponent(s.id));
  }, { id: 'service-create' });
  clear(box, ...pageHead('New service', 'A service starts as a draft: publish it when it is ready to be called.'), h('div', { class: 'panel' }, f));
}

export async function one(box, { id }) {
  const path = '/services/' + encodeURIComponent(id);
  const { data: s, etag } = await get(path, { withEtag: true });
  const mine = isOperator() || s.tenant_id === myTenant();
  let doc = null;
  if (s.has_openapi) { try { doc = await get(path + '/openapi.json'); } catch { doc = null; } }
  const lifecycle = h('div', { class: 'actions', id: 'lifecycle' });
  const govern = mine && can('govern');
  const step = (label, to, action, extra = {}) => h('button', { type: 'button', class: extra.danger ? 'danger' : '', 'data-action': action, onclick: async () => {
    const answer = await confirm({ title: `${label} ${s.name}?`, body: `It becomes ${to}: ${STATE_MEANING[to]}`, confirmLabel: label, danger: extra.danger,
      reason: extra.sunset ? 'Sunset date (RFC 3339, optional), e.g. 2027-06-30T00:00:00Z' : undefined });
    if (!answer) return;
    try {
      const b = extra.sunset && answer.reason ? { sunset: answer.reason } : {};
      await post(`${path}/${action}`, b, { ifMatch: etag });
      toast(`${s.name} is ${to}`);
      go('#/services/' + encodeURIComponent(id));
    } catch (e) { toast(e.message, 'error'); }
  } }, label);
  if (govern) {
    if (s.state === 'draft' || s.state === 'deprecated') lifecycle.append(step(s.state === 'draft' ? 'Publish' : 'Publish again', 'published', 'publish'));
    if (s.state === 'published') lifecycle.append(step('Deprecate', 'deprecated', 'deprecate', { sunset: true }));
    if (s.state !== 'retired') lifecycle.append(step('Retire', 'retired', 'retire', { danger: true }));
    if (s.state === 'retired') lifecycle.append(h('button', { type: 'button', class: 'danger', 'data-action': 'delete', onclick: async () => {
      if (!await confirm({ title: `Delete ${s.name}?`, body: 'Its subscriptions and docs go with it. This cannot be undone.', confirmLabel: 'Delete', danger: true })) return;
      try { await del(path); toast('Service deleted'); go('#/services'); } catch (e) { toast(e.message, 'error'); }
    } }, 'Delete'));
  }
  const editable = mine && s.state !== 'retired' && (s.state === 'draft' ? can('develop') : can('govern'));
  const subs = mine && can('read') ? h('div', {}) : null;
  clear(box, ...pageHead(s.name, null),
    h('p', {}, badge(s.state), ' ', STATE_MEANING[s.state] || ''),
    lifecycle,
    h('div', { class: 'panel' }, kv([
      ['Id', h('code', {}, s.id)], ['Tenant', h('code', {}, s.tenant_id)], ['Visibility', s.visibility], ['Approval', s.approval],
      ['Credentials', s.credentials.join(', ')], ['Quota', s.quota ? JSON.stringify(s.quota) : 'none'],
      s.sunset_at ? ['Sunset', time(s.sunset_at)] : null, ['Updated', time(s.updated_at)], ['Version', String(s.version)],
      ['Portal', link('#/portal/services/' + encodeURIComponent(s.id), 'Open in the developer portal')],
    ])),
    h('h2', {}, 'Routes'),
    table([
      { title: 'Path', render: r => h('code', {}, r.path_prefix ? r.path_prefix + '*' : r.path_exact) },
      { title: 'Methods', render: r => (r.methods || []).join(', ') || 'any' },
      { title: 'Hosts', render: r => (r.hosts || []).join(', ') || 'any' },
      { title: 'Rewrite', render: r => r.strip_prefix ? 'strip prefix' : (r.rewrite_prefix || '—') },
    ], s.routes),
    mine ? [h('h2', {}, s.ai ? 'AI' : 'Upstream'), h('pre', {}, JSON.stringify(s.ai || s.upstream, null, 2))] : null,
    subs ? [h('h2', {}, 'Subscriptions'), subs] : null,
    editable ? h('details', { class: 'panel', id: 'service-edit' }, h('summary', {}, 'Edit'),
      form(serviceFields({ ...s, openapiText: doc ? JSON.stringify(doc, null, 2) : '' }, null), 'Save', async v => {
        await put(path, body(v), { ifMatch: etag });
        toast('Saved');
        go('#/services/' + encodeURIComponent(id));
      })) : null,
    h('h2', {}, 'API documentation'),
    doc ? renderOpenApi(doc) : h('p', { class: 'muted' }, 'No OpenAPI document yet.'));
  if (subs) {
    clear(subs, pagedTable([
      { title: 'App', render: x => link('#/apps/' + encodeURIComponent(x.app_id), x.app_id) },
      { title: 'State', render: x => badge(x.state) },
      { title: 'Since', render: x => time(x.updated_at) },
    ], cursor => get('/subscriptions' + qs({ service_id: id, cursor, limit: 20 })), 'No subscriptions.'));
  }
}
