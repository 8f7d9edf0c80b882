import { get, post, del, put, qs } from '../api.js';
import { h, clear, pageHead, field, input, form, pagedTable, searchBar, link, time, kv, confirm, toast, textarea, errorBox } from '../ui.js';
import { can, isOperator, go } from '../app.js';
import { membersPanel } from './users.js';

export async function list(box) {
  let q = '';
  const table = pagedTable([
    { title: 'Name', render: t => link('#/tenants/' + encodeURIComponent(t.id), t.name) },
    { title: 'Id', render: t => h('code', {}, t.id) },
    { title: 'Created', render: t => time(t.created_at) },
  ], cursor => get('/tenants' + qs({ q, cursor, limit: 50 })), 'No tenants yet.');
  const create = form([field('Name', input('name', { required: true, id: 'tenant-name' }), 'Letters, digits, - and _.')],
    'Create tenant', async v => {
      const t = await post('/tenants', { name: v.name });
      toast(`Tenant ${t.name} created`);
      go('#/tenants/' + encodeURIComponent(t.id));
    }, { id: 'tenant-create' });
  clear(box, ...pageHead('Tenants', 'Each tenant owns its services, apps and members; it sees nothing of the others.'),
    h('div', { class: 'panel' }, h('h2', {}, 'New tenant'), create),
    h('h2', {}, 'All tenants'),
    searchBar([field('Search by name', input('q', { type: 'search', id: 'tenant-search' }))], v => { q = v.q; table.reload(); }),
    table);
}

export async function one(box, { id }) {
  const t = await get('/tenants/' + encodeURIComponent(id));
  const scope = t.route_scope ? h('pre', {}, JSON.stringify(t.route_scope, null, 2)) : h('span', { class: 'muted' }, 'any host and path');
  const actions = h('div', { class: 'actions' });
  if (isOperator()) {
    actions.append(h('button', { type: 'button', class: 'danger', onclick: async () => {
      const ok = await confirm({ title: `Delete tenant ${t.name}?`, body: 'Only an empty tenant (no services, apps or members) can be deleted.', confirmLabel: 'Delete', danger: true });
      if (!ok) return;
      try { await del('/tenants/' + encodeURIComponent(id)); toast('Tenant deleted'); go('#/tenants'); } catch (e) { toast(e.message, 'error'); }
    } }, 'Delete tenant'));
  }
  clear(box, ...pageHead(`Tenant ${t.name}`, null),
    h('div', { class: 'panel' }, kv([['Id', h('code', {}, t.id)], ['Created', time(t.created_at)], ['Route scope', scope],
      ['AI limits', t.ai_limits ? h('code', {}, JSON.stringify(t.ai_limits)) : 'none']])),
    isOperator() ? scopeForm(t) : null,
    isOperator() ? aiLimitsForm('/tenants/' + encodeURIComponent(id) + '/ai-limits', t.ai_limits) : null,
    actions,
    h('h2', {}, 'Members'),
    can('users') ? membersPanel(t.id) : h('p', { class: 'muted' }, 'Your role cannot list members.'));
}

function scopeForm(t) {
  const f = form([field('Route scope (JSON list of {"path_prefix", "hosts"?}; empty: no restriction)',
      textarea('scopes', { value: t.route_scope ? JSON.stringify(t.route_scope, null, 2) : '', id: 'scope-json' }))],
    'Save route scope', async v => {
      const scopes = v.scopes.trim() ? JSON.parse(v.scopes) : null;
      await put('/tenants/' + encodeURIComponent(t.id) + '/route-scope', { scopes });
      toast('Route scope saved');
    });
  return h('details', { class: 'panel' }, h('summary', {}, 'Route scope'), f);
}

// The AI limits of a tenant or an app (PUT replaces them, DELETE removes them).
export function aiLimitsForm(path, current) {
  const box = h('details', { class: 'panel' }, h('summary', {}, 'AI limits'));
  const f = form([field('Limits (JSON: tokens_per_minute, tokens_per_day, cost_per_day_usd, ...)',
      textarea('limits', { value: current ? JSON.stringify(current, null, 2) : '{}', id: 'ai-limits-json' }))],
    'Save AI limits', async v => {
      let body;
      try { body = JSON.parse(v.limits || '{}'); } catch { throw { message: 'not JSON', fields: { limits: 'not JSON' } }; }
      await put(path, body);
      toast('AI limits saved');
    });
  box.append(f, h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try { await del(path); toast('AI limits removed'); } catch (e) { toast(e.message, 'error'); }
  } }, 'Remove AI limits'));
  return box;
}

export { errorBox };
