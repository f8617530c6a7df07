// SPDX-License-Identifier: Apache-2.0
// Signing in: a user name and password, checked as the registry's Basic
// auth checks them; the session is an HttpOnly cookie the script never
// sees. Over plain HTTP it is offered only on this machine, and the page
// says why.
import {clear, h, notice} from './dom.js';
import {loadSession, signIn} from './api.js';

function nextOf(query) {
  const n = query.get('next') || '';
  // Only a page of this app: never another site.
  return /^\/ui\/[^/\\]/.test(n) || n === '/ui/' ? n : '/ui/repositories';
}

export async function render(main, ctx) {
  ctx.title('Sign in');
  const s = await loadSession();
  clear(main).append(h('h1', null, 'Sign in'));
  if (s && s.user) {
    main.append(h('p', null, 'You are signed in as ', h('strong', null, s.user), '. ',
      h('a', {href: nextOf(ctx.query)}, 'Go on')));
    return;
  }
  if (!s || !s.sign_in || !s.sign_in.available) {
    main.append(h('p', {class: 'notice', role: 'note'},
      `Signing in is not offered here: ${s && s.sign_in ? s.sign_in.reason : 'the registry cannot be reached.'}`));
    return;
  }
  const status = h('div', {id: 'sign-in-status'});
  const user = h('input', {id: 'username', name: 'username', type: 'text', autocomplete: 'username', required: true, spellcheck: 'false'});
  const pass = h('input', {id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true});
  const button = h('button', {type: 'submit'}, 'Sign in');
  const form = h('form', {class: 'sign-in', 'aria-describedby': 'sign-in-about'},
    h('p', {id: 'sign-in-about', class: 'muted'}, 'Use your registry account, as with docker login.'),
    h('div', {class: 'field'}, h('label', {for: 'username'}, 'User name'), user),
    h('div', {class: 'field'}, h('label', {for: 'password'}, 'Password'), pass),
    button, status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    button.disabled = true;
    try {
      await signIn(user.value, pass.value);
      pass.value = '';
      await ctx.showWho();
      ctx.navigate(nextOf(ctx.query), {replace: true});
    } catch (e) {
      status.append(notice(e.status === 401 ? 'The user name or password is wrong.' :
        e.status === 429 ? 'Too many failed sign-ins from this address: wait a minute.' : e.message));
      pass.focus();
    } finally {
      button.disabled = false;
    }
  });
  main.append(form);
  user.focus();
}
