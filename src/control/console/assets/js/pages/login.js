import { post, get } from '../api.js';
import { h, clear, field, input, form } from '../ui.js';
import { signedIn, session } from '../app.js';

// Signs in, then checks that the browser kept the cookie (it drops a Secure one over plain HTTP).
async function signIn(body) {
  const s = await post('/session', body);
  try {
    await get('/session', { quiet: true });
  } catch {
    throw new Error('Signed in, but the browser did not keep the session cookie. Serve the console over HTTPS ([admin] tls), or set [admin] cookie_secure = false when it is reached over plain HTTP.');
  }
  signedIn(s);
}

export async function render(box) {
  document.title = 'Sign in · Ringway';
  if (session.me) { location.hash = '#/'; return; }
  let mode = 'user';
  const body = h('div', {});
  const tabs = h('div', { class: 'tabs', role: 'group', 'aria-label': 'How to sign in' });
  function show() {
    clear(tabs,
      [['user', 'Email and password'], ['operator', 'Admin token']].map(([m, label]) =>
      h('button', { type: 'button', 'aria-pressed': String(mode === m), id: 'tab-' + m,
        onclick: () => { mode = m; show(); } }, label)));
    const f = mode === 'user'
      ? form([
          field('Email', input('email', { type: 'email', autocomplete: 'username', required: true, id: 'login-email' })),
          field('Password', input('password', { type: 'password', autocomplete: 'current-password', required: true, id: 'login-password' })),
        ], 'Sign in', v => signIn({ email: v.email, password: v.password }), { id: 'login-form' })
      : form([
          field('Admin token', input('token', { type: 'password', autocomplete: 'off', required: true, id: 'login-token' }),
            'The bootstrap token (RINGWAY_ADMIN_TOKEN or [admin] token_file). It is traded for a session and not kept by the page.'),
        ], 'Sign in as operator', v => signIn({ token: v.token }), { id: 'login-form' });
    clear(body, f);
    f.querySelector('input').focus();
  }
  clear(box, h('div', { class: 'login panel' },
    h('h1', {}, 'Sign in to Ringway'),
    h('p', { class: 'lead' }, 'The console and developer portal of this gateway.'),
    tabs, body));
  show();
}
