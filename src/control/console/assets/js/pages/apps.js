import { get, post, del, qs, all } from '../api.js';
import { h, clear, pageHead, field, input, select, form, pagedTable, searchBar, link, time, kv, confirm, toast, badge, secretBox, textarea } from '../ui.js';
import { can, isOperator, myTenant, go } from '../app.js';
import { aiLimitsForm } from './tenants.js';

export async function list(box) {
  const tenants = isOperator() ? await all('/tenants') : null;
  const filters = { q: '', tenant_id: '' };
  const tbl = pagedTable([
    { title: 'Name', render: a => link('#/apps/' + encodeURIComponent(a.id), a.name) },
    { title: 'Id', render: a => h('code', {}, a.id) },
    { title: 'Tenant', render: a => h('code', {}, a.tenant_id) },
    { title: 'Created', render: a => time(a.created_at) },
  ], cursor => get('/apps' + qs({ ...filters, cursor, limit: 50 })), 'No apps match.');
  const create = can('develop') && (!tenants || tenants.length) ? h('div', { class: 'panel' }, h('h2', {}, 'New app'), form([
    h('div', { class: 'row' },
      tenants ? field('Tenant', select('tenant_id', tenants.map(t => [t.id, t.name]), tenants[0]?.id)) : null,
      field('Name', input('name', { required: true, id: 'app-name' }), 'What calls the APIs: a team\'s service, a mobile app, a script.')),
  ], 'Create app', async v => {
    const a = await post('/apps', { tenant_id: tenants ? v.tenant_id : myTenant(), name: v.name });
    toast(`App ${a.name} created`);
    go('#/apps/' + encodeURIComponent(a.id));
  }, { id: 'app-create' })) : null;
  clear(box, ...pageHead('Apps & keys', 'Apps call services with their keys or credentials, once a subscription is approved.'),
    create,
    searchBar([
      field('Search by name', input('q', { type: 'search', id: 'app-search' })),
      tenants ? field('Tenant', select('tenant_id', [['', 'any'], ...tenants.map(t => [t.id, t.name])], '')) : null,
    ], v => { Object.assign(filters, v); tbl.reload(); }),
    tbl);
}

export async function one(box, { id }) {
  const path = '/apps/' + encodeURIComponent(id);
  const app = await get(path);
  const shown = h('div', { id: 'shown-once' });
  const keys = pagedTable([
    { title: 'Name', render: k => k.name || '—' },
    { title: 'Prefix', render: k => h('code', {}, k.prefix + '…') },
    { title: 'State', render: k => badge(k.revoked_at ? 'revoked' : (k.expires_at && Date.parse(k.expires_at) < Date.now() ? 'expired' : 'active')) },
    { title: 'Created', render: k => time(k.created_at) },
    { title: 'Expires', render: k => time(k.expires_at) },
    { title: '', render: k => k.revoked_at || !can('develop') ? null : h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', 'data-action': 'rotate', onclick: () => rotate(k) }, 'Rotate'),
      h('button', { type: 'button', class: 'danger', 'data-action': 'revoke', onclick: () => revoke(k) }, 'Revoke')) },
  ], cursor => get(path + '/keys' + qs({ cursor, limit: 50 })), 'No keys yet.');

  async function newKey(name) {
    const k = await post(path + '/keys', name ? { name } : {});
    clear(shown, secretBox(`New key ${k.name || k.prefix}`, k.key));
    keys.reload();
    return k;
  }
  async function revoke(k) {
    if (!await confirm({ title: `Revoke key ${k.prefix}…?`, body: 'Calls with it are refused from the next request on.', confirmLabel: 'Revoke', danger: true })) return;
    try { await post(`${path}/keys/${encodeURIComponent(k.id)}/revoke`); toast('Key revoked'); keys.reload(); } catch (e) { toast(e.message, 'error'); }
  }
  async function rotate(k) {
    if (!await confirm({ title: `Rotate key ${k.prefix}…?`, body: 'A new key is made and shown once; the old one is revoked at once. Deploy the new key first if callers must not see errors (make a key, deploy, then revoke).', confirmLabel: 'Rotate' })) return;
    try {
      await newKey(k.name ? k.name : undefined);
      await post(`${path}/keys/${encodeURIComponent(k.id)}/revoke`);
      toast('Key rotated: the old key is revoked');
      keys.reload();
    } catch (e) { toast(e.message, 'error'); }
  }

  const subs = pagedTable([
    { title: 'Service', render: s => link('#/portal/services/' + encodeURIComponent(s.service_id), s.service_name || s.service_id) },
    { title: 'State', render: s => badge(s.state) },
    { title: 'Reason', render: s => s.reason || '' },
    { title: 'Since', render: s => time(s.updated_at) },
    { title: '', render: s => (s.state === 'pending' || s.state === 'approved') && can('develop') ? h('button', { type: 'button', class: 'secondary', onclick: async () => {
      if (!await confirm({ title: 'Cancel this subscription?', body: 'The app loses access to the service.', confirmLabel: 'Cancel subscription', danger: true })) return;
      try { await post(`/subscriptions/${encodeURIComponent(s.id)}/cancel`); toast('Subscription cancelled'); subs.reload(); } catch (e) { toast(e.message, 'error'); }
    } }, 'Cancel') : null },
  ], cursor => get('/subscriptions' + qs({ app_id: id, cursor, limit: 50 })), 'No subscriptions: request access to a service in the API catalog.');

  const creds = h('div', {});
  clear(box, ...pageHead(`App ${app.name}`, null),
    h('div', { class: 'panel' }, kv([['Id', h('code', {}, app.id)], ['Tenant', h('code', {}, app.tenant_id)], ['Created', time(app.created_at)],
      ['Usage', link('#/analytics?app_id=' + encodeURIComponent(app.id), 'Traffic of this app')]])),
    h('h2', {}, 'API keys'),
    shown,
    can('develop') ? form([field('Key name (optional)', input('name', { id: 'key-name', maxlength: 100 }))], 'Create key', async (v, f) => { await newKey(v.name); f.reset(); }, { id: 'key-create' }) : null,
    keys,
    h('h2', {}, 'Subscriptions'),
    h('p', {}, link('#/portal', 'Find services in the API catalog')),
    subs,
    h('h2', {}, 'Other credentials'),
    creds,
    can('govern') ? aiLimitsForm(path + '/ai-limits', app.ai_limits) : null,
    can('develop') ? h('div', { class: 'actions' }, h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!await confirm({ title: `Delete app ${app.name}?`, body: 'Its keys, credentials and subscriptions end now.', confirmLabel: 'Delete app', danger: true })) return;
      try { await del(path); toast('App deleted'); go('#/apps'); } catch (e) { toast(e.message, 'error'); }
    } }, 'Delete app')) : null);
  credentials(creds, path);
}

function credentials(box, path) {
  const tbl = pagedTable([
    { title: 'Kind', render: c => c.kind },
    { title: 'Identity', render: c => c.issuer || c.username || c.access_key || '—' },
    { title: 'State', render: c => badge(c.revoked_at ? 'revoked' : 'active') },
    { title: 'Created', render: c => time(c.created_at) },
    { title: '', render: c => c.revoked_at || !can('develop') ? null : h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!await confirm({ title: `Revoke this ${c.kind} credential?`, confirmLabel: 'Revoke', danger: true })) return;
      try { await post(`${path}/credentials/${encodeURIComponent(c.id)}/revoke`); toast('Credential revoked'); tbl.reload(); } catch (e) { toast(e.message, 'error'); }
    } }, 'Revoke') },
  ], cursor => get(path + '/credentials' + qs({ cursor, limit: 50 })), 'No JWT, basic or HMAC credentials.');
  const shown = h('div', {});
  const add = can('develop') ? h('details', { class: 'panel' }, h('summary', {}, 'Add a JWT, basic or HMAC credential'),
    form([
      field('Kind', select('kind', ['jwt', 'basic', 'hmac'], 'jwt')),
      field('Fields (JSON)', textarea('fields', { value: '{\n  "issuer": "https://issuer.example",\n  "jwks_url": "https://issuer.example/.well-known/jwks.json"\n}' }),
        'jwt: issuer with public_key, secret or jwks_url (audience optional); basic: username and password; hmac: nothing (the gateway makes the secret).'),
    ], 'Add credential', async v => {
      let fields;
      try { fields = JSON.parse(v.fields || '{}'); } catch { throw Object.assign(new Error('not JSON'), { fields: { fields: 'not JSON' } }); }
      const c = await post(path + '/credentials', { kind: v.kind, ...fields });
      clear(shown, c.secret ? secretBox(`HMAC secret of access key ${c.access_key}`, c.secret) : (c.password ? secretBox(`Password of ${c.username}`, c.password) : null));
      toast('Credential added');
      tbl.reload();
    })) : null;
  clear(box, shown, add, tbl);
}
