import { get, post, patch, qs, all } from '../api.js';
import { h, clear, pageHead, field, input, select, form, pagedTable, searchBar, time, confirm, toast, badge } from '../ui.js';
import { can, isOperator, myTenant, session } from '../app.js';

const ROLES = ['viewer', 'developer', 'admin', 'owner'];

export async function list(box) {
  const tenants = isOperator() ? await all('/tenants') : [];
  clear(box, ...pageHead('Members', 'People who sign in to the console and portal, and their roles.'));
  if (isOperator() && !tenants.length) {
    box.append(h('p', {}, 'Create a tenant first.'));
    return;
  }
  const tenantPick = isOperator() ? select('tenant', tenants.map(t => [t.id, t.name]), tenants[0]?.id, { id: 'members-tenant' }) : null;
  const holder = h('div', {});
  const show = () => clear(holder, membersPanel(isOperator() ? tenantPick.value : myTenant()));
  if (tenantPick) {
    tenantPick.addEventListener('change', show);
    box.append(field('Tenant', tenantPick));
  }
  box.append(holder);
  show();
}

// A tenant's members, with a form to add one (admins and owners; owners alone add owners).
export function membersPanel(tenantId) {
  let q = '';
  const table = pagedTable([
    { title: 'Email', render: u => u.email },
    { title: 'Role', render: u => roleCell(u, () => table.reload()) },
    { title: 'State', render: u => badge(u.disabled_at ? 'disabled' : 'active') },
    { title: 'Created', render: u => time(u.created_at) },
    { title: '', render: u => (!u.disabled_at && can('users') && u.id !== session.me?.user?.id) ? h('button', { type: 'button', class: 'secondary', onclick: async () => {
      const ok = await confirm({ title: `Disable ${u.email}?`, body: 'They are signed out everywhere and their tokens stop working.', confirmLabel: 'Disable', danger: true });
      if (!ok) return;
      try { await post(`/users/${encodeURIComponent(u.id)}/disable`); toast('User disabled'); table.reload(); } catch (e) { toast(e.message, 'error'); }
    } }, 'Disable') : null },
  ], cursor => get('/users' + qs({ tenant_id: tenantId, q, cursor, limit: 50 })), 'No members yet.');
  const add = can('users') ? h('div', { class: 'panel' }, h('h3', {}, 'Add a member'), form([
    h('div', { class: 'row' },
      field('Email', input('email', { type: 'email', required: true, id: 'member-email', autocomplete: 'off' })),
      field('Initial password', input('password', { type: 'password', required: true, id: 'member-password', autocomplete: 'new-password' }), 'At least 12 characters; they can change it.'),
      field('Role', select('role', ROLES, 'developer', { id: 'member-role' }))),
  ], 'Add member', async (v, f) => {
    const u = await post('/users', { tenant_id: tenantId, email: v.email, password: v.password, role: v.role });
    toast(`${u.email} added as ${u.role}`);
    f.reset();
    table.reload();
  }, { id: 'member-create' })) : null;
  return h('div', {},
    add,
    searchBar([field('Search by email', input('q', { type: 'search' }))], v => { q = v.q; table.reload(); }),
    table);
}

function roleCell(u, reload) {
  if (!can('users') || u.disabled_at || u.id === session.me?.user?.id) return u.role;
  const s = select('role', ROLES, u.role, { 'aria-label': `Role of ${u.email}` });
  s.addEventListener('change', async () => {
    try { await patch('/users/' + encodeURIComponent(u.id), { role: s.value }); toast(`${u.email} is now ${s.value}`); } catch (e) { toast(e.message, 'error'); s.value = u.role; reload(); }
  });
  return s;
}
