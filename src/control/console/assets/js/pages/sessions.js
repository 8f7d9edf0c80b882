// Sessions: where you are signed in, and ending a session that should not be. The operator sees
// the console sessions of the bootstrap token; a user sees their own sessions and personal tokens.

import { get, post, qs } from '../api.js';
import { h, clear, pageHead, pagedTable, time, badge, confirm, toast, form, field, input, select, secretBox } from '../ui.js';
import { isOperator, session } from '../app.js';

export function render(box) {
  if (isOperator()) return operator(box);
  return user(box);
}

function operator(box) {
  const tbl = pagedTable([
    { title: 'Signed in', render: s => [time(s.created_at), s.current ? [' ', h('span', { class: 'badge active' }, 'this session')] : null] },
    { title: 'Ends', render: s => time(s.expires_at) },
    { title: 'From', render: s => s.client ? h('code', {}, s.client) : '—' },
    { title: 'Browser', render: s => s.user_agent || '—' },
    { title: '', render: s => h('button', { type: 'button', class: 'secondary', onclick: () => end(s) }, s.current ? 'Sign out' : 'End') },
  ], cursor => get('/sessions' + qs({ cursor, limit: 50 })), 'No console sessions.');
  async function end(s) {
    const title = s.current ? 'End this session?' : `End the session signed in from ${s.client || 'an unknown address'}?`;
    if (!await confirm({ title, body: 'Its browser is signed out at its next call. Rotating the bootstrap token ends every session at once.', confirmLabel: 'End session', danger: true })) return;
    try {
      await post(`/sessions/${encodeURIComponent(s.id)}/revoke`, undefined, { quiet: s.current });
      if (s.current) { location.reload(); return; }
      toast('Session ended');
      tbl.reload();
    } catch (e) { toast(e.message, 'error'); }
  }
  clear(box, ...pageHead('Sessions', 'The console sessions signed in with the bootstrap token. End one you do not recognise.'), tbl);
}

function user(box) {
  const tbl = pagedTable([
    { title: 'Kind', render: t => [t.kind === 'session' ? 'console session' : 'personal token', t.current ? [' ', h('span', { class: 'badge active' }, t.kind === 'session' ? 'this session' : 'in use')] : null] },
    { title: 'Name', render: t => t.name || h('code', {}, t.prefix + '…') },
    { title: 'Scopes', render: t => (t.scopes || []).join(', ') },
    { title: 'Created', render: t => time(t.created_at) },
    { title: 'Ends', render: t => time(t.expires_at) },
    { title: 'From', render: t => t.client ? [h('code', {}, t.client), t.user_agent ? h('div', { class: 'muted' }, t.user_agent) : null] : '—' },
    { title: 'State', render: t => badge(t.revoked_at ? 'revoked' : new Date(t.expires_at) < new Date() ? 'expired' : 'active') },
    { title: '', render: t => t.revoked_at || new Date(t.expires_at) < new Date() ? '' : h('button', { type: 'button', class: 'secondary', onclick: () => revoke(t) }, t.current && t.kind === 'session' ? 'Sign out' : 'Revoke') },
  ], cursor => get('/tokens' + qs({ cursor, limit: 50 })), 'No sessions or tokens.');
  async function revoke(t) {
    const what = t.current ? (t.kind === 'session' ? 'the session you are using' : 'the token you are using')
      : t.kind === 'session' ? `the console session signed in from ${t.client || 'an unknown address'}` : `token ${t.name || t.prefix}`;
    const body = t.current ? 'You are signed out at once.' : 'Calls with it are refused from the next one on.';
    if (!await confirm({ title: `Revoke ${what}?`, body, confirmLabel: 'Revoke', danger: true })) return;
    try {
      await post(`/tokens/${encodeURIComponent(t.id)}/revoke`, undefined, { quiet: t.current });
      if (t.current) { location.reload(); return; }
      toast('Revoked'); tbl.reload();
    } catch (e) { toast(e.message, 'error'); }
  }
  // A personal token for scripts and CI (`Authorization: Bearer`), shown once.
  const shown = h('div', { id: 'shown-once' });
  const access = session.me.write ? [['read', 'read'], ['write', 'read and write']] : [['read', 'read']];
  const make = form([
    h('div', { class: 'row' },
      field('Name', input('name', { required: true, maxlength: 100, placeholder: 'ci-deploy' })),
      field('Access', select('access', access, 'read')),
      field('Days until it expires', input('expires_in_days', { type: 'number', min: 1, max: 365, value: 90, inputmode: 'numeric' }), '1 to 365')),
  ], 'Make token', async v => {
    const body = { name: v.name, scopes: v.access === 'write' ? ['read', 'write'] : ['read'] };
    if (v.expires_in_days) body.expires_in_days = Number(v.expires_in_days);
    const t = await post('/tokens', body);
    clear(shown, secretBox(`New token ${t.name}`, t.token));
    make.reset();
    tbl.reload();
  }, { id: 'token-form' });
  clear(box, ...pageHead('Sessions & tokens', 'Your console sessions and personal API tokens. Revoke one you no longer use.'),
    tbl,
    h('section', { class: 'panel' }, h('h2', {}, 'New personal token'),
      h('p', { class: 'muted' }, 'For scripts and CI: send it as Authorization: Bearer. It has your role in your tenant, and is shown once.'),
      shown, make));
}
