// The console's shell: the session, the navigation for the signed-in role, and a hash router
// (`#/services/svc_…`) over the pages in ./pages/.

import { get, del, setCsrf, onSessionEnd } from './api.js';
import { h, clear, toast, errorBox } from './ui.js';
import * as login from './pages/login.js';
import * as overview from './pages/overview.js';
import * as tenants from './pages/tenants.js';
import * as users from './pages/users.js';
import * as services from './pages/services.js';
import * as apps from './pages/apps.js';
import * as subscriptions from './pages/subscriptions.js';
import * as ai from './pages/ai.js';
import * as audit from './pages/audit.js';
import * as analytics from './pages/analytics.js';
import * as calls from './pages/calls.js';
import * as portal from './pages/portal.js';
import * as sessions from './pages/sessions.js';

const ROLES = ['viewer', 'developer', 'admin', 'owner'];
const NEEDS = { read: 'viewer', develop: 'developer', govern: 'admin', users: 'admin' };

// What the signed-in principal is and may do (the API checks again on every call).
export const session = { me: null, expiresAt: null };

export function can(need) {
  const me = session.me;
  if (!me) return false;
  if (me.kind === 'operator') return true;
  if (need === 'operator') return false;
  if (need !== 'read' && !me.write) return false;
  return ROLES.indexOf(me.user.role) >= ROLES.indexOf(NEEDS[need]);
}

export const isOperator = () => session.me?.kind === 'operator';
export const myTenant = () => session.me?.user?.tenant_id;

const ROUTES = [
  ['/login', login.render, { public: true }],
  ['/', overview.render],
  ['/tenants', tenants.list, { need: 'operator' }],
  ['/tenants/:id', tenants.one],
  ['/users', users.list, { need: 'users' }],
  ['/services', services.list],
  ['/services/new', services.create, { need: 'develop' }],
  ['/services/:id', services.one],
  ['/apps', apps.list],
  ['/apps/:id', apps.one],
  ['/subscriptions', subscriptions.inbox],
  ['/ai', ai.render, { need: 'operator' }],
  ['/audit', audit.render],
  ['/sessions', sessions.render],
  ['/analytics', analytics.render],
  ['/calls', calls.list],
  ['/calls/:rid', calls.one],
  ['/portal', portal.catalog],
  ['/portal/services/:id', portal.service],
  ['/portal/requests', portal.requests],
];

function match(path) {
  const parts = path.split('/').filter(Boolean);
  for (const [pattern, render, opts = {}] of ROUTES) {
    const want = pattern.split('/').filter(Boolean);
    if (want.length !== parts.length) continue;
    const params = {};
    let ok;
    try {
      ok = want.every((w, i) => w.startsWith(':') ? (params[w.slice(1)] = decodeURIComponent(parts[i]), true) : w === parts[i]);
    } catch { ok = false; } // a malformed %-escape: no such page
    if (ok) return { render, params, opts };
  }
  return null;
}

function nav() {
  const el = document.getElementById('nav');
  const here = location.hash.slice(1) || '/';
  const item = (href, text, show = true) => show ? h('a', {
    href: '#' + href,
    'aria-current': (here === href || (href !== '/' && here.startsWith(href + '/'))) ? 'page' : null,
  }, text) : null;
  clear(el,
    h('h2', {}, 'Console'),
    item('/', 'Overview'),
    item('/tenants', 'Tenants', isOperator()),
    item('/users', 'Members', can('users')),
    item('/services', 'Services'),
    item('/apps', 'Apps & keys'),
    item('/subscriptions', 'Subscriptions'),
    item('/ai', 'AI gateway', isOperator()),
    item('/audit', 'Audit log'),
    item('/sessions', 'Sessions'),
    h('h2', {}, 'Analytics'),
    item('/analytics', 'Traffic'),
    item('/calls', 'Call log'),
    h('h2', {}, 'Developer portal'),
    item('/portal', 'API catalog'),
    item('/portal/requests', 'My access requests'));
  el.hidden = false;
}

function who() {
  const el = document.getElementById('who');
  const me = session.me;
  if (!me) { clear(el); return; }
  const name = me.kind === 'operator' ? 'Operator' : me.user.email;
  const role = me.kind === 'operator' ? 'operator' : me.user.role;
  clear(el,
    h('span', { class: 'email' }, name),
    h('span', { class: 'role', 'data-role': role }, role),
    h('button', { type: 'button', class: 'secondary', id: 'sign-out', onclick: signOut }, 'Sign out'));
}

async function signOut() {
  try { await del('/session', { quiet: true }); } catch { /* the session may be gone already */ }
  signedOut('Signed out.');
}

function signedOut(message) {
  clearTimeout(expiry);
  session.me = null;
  setCsrf(null);
  who();
  document.getElementById('nav').hidden = true;
  document.getElementById('menu-toggle').hidden = true;
  const back = location.hash.startsWith('#/login') ? '' : location.hash;
  if (back) sessionStorage.setItem('ringway.after-login', back);
  location.hash = '#/login';
  if (message) toast(message);
}

// Goes to the sign-in page when the session's time is up (the server refuses it from then on).
let expiry;
function watchExpiry() {
  clearTimeout(expiry);
  const left = Date.parse(session.expiresAt) - Date.now();
  if (left > 0 && left < 2 ** 31) {
    expiry = setTimeout(() => { if (session.me) signedOut('Your session has ended. Sign in again.'); }, left + 500);
  }
}

export function signedIn(s) {
  session.me = s.me;
  session.expiresAt = s.expires_at;
  setCsrf(s.csrf_token);
  watchExpiry();
  who();
  document.getElementById('menu-toggle').hidden = false;
  const back = sessionStorage.getItem('ringway.after-login');
  sessionStorage.removeItem('ringway.after-login');
  location.hash = back && !back.startsWith('#/login') ? back : '#/';
}

// A signed-in page that gets a 401: the session expired (the browser dropped the cookie at its
// Max-Age, or the server ended it) or was signed out elsewhere.
onSessionEnd(() => {
  if (session.me) signedOut('Your session has ended. Sign in again.');
});

let generation = 0;
async function route() {
  const hash = location.hash;
  if (hash && !hash.startsWith('#/')) return; // an in-page anchor
  const path = (hash.slice(1) || '/').split('?')[0];
  const main = document.getElementById('main');
  const m = match(path);
  if (!m) { clear(main, h('h1', {}, 'Not found'), h('p', {}, 'No page at ' + path + '.')); return; }
  if (!m.opts.public && !session.me) {
    sessionStorage.setItem('ringway.after-login', hash);
    location.hash = '#/login';
    return;
  }
  if (session.me) nav();
  if (matchMedia('(max-width: 800px)').matches) {
    // On a narrow screen the menu folds away again once a page is chosen.
    document.getElementById('nav').classList.add('collapsed');
    document.getElementById('menu-toggle').setAttribute('aria-expanded', 'false');
  }
  const mine = ++generation;
  const box = h('div', {});
  clear(main, box);
  if (m.opts.need && !can(m.opts.need)) {
    clear(box, h('h1', {}, 'Not allowed'), h('p', {}, 'Your role cannot open this page.'));
    return;
  }
  try {
    await m.render(box, m.params, new URLSearchParams(hash.split('?')[1] || ''));
  } catch (e) {
    if (mine === generation && e.status !== 401) {
      clear(box, h('h1', {}, e.status === 404 ? 'Not found' : 'Something went wrong'), errorBox(e));
    }
  }
  if (mine === generation && document.activeElement === document.body) main.focus({ preventScroll: true });
}

export function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

async function start() {
  document.getElementById('skip').addEventListener('click', () => document.getElementById('main').focus());
  const toggle = document.getElementById('menu-toggle');
  toggle.addEventListener('click', () => {
    const nav = document.getElementById('nav');
    const open = nav.classList.toggle('collapsed') === false;
    toggle.setAttribute('aria-expanded', String(open));
  });
  if (matchMedia('(max-width: 800px)').matches) {
    document.getElementById('nav').classList.add('collapsed');
  }
  try {
    const s = await get('/session', { quiet: true });
    session.me = s.me;
    session.expiresAt = s.expires_at;
    setCsrf(s.csrf_token);
    watchExpiry();
    who();
    toggle.hidden = false;
  } catch { /* not signed in */ }
  window.addEventListener('hashchange', route);
  route();
}

start();
