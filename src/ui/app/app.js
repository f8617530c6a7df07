// SPDX-License-Identifier: Apache-2.0
// The app: a router over the URL (every page has a deep link that survives
// a reload; the server answers any /ui/ path with this app), and the pages.
import {clear, h, notice} from './dom.js';
import {ApiError, loadSession, signOut} from './api.js';

const pages = [
  {re: /^\/ui\/?$/, redirect: '/ui/repositories'},
  {re: /^\/ui\/repositories\/?$/, nav: 'repositories', load: () => import('./repositories.js')},
  {re: /^\/ui\/repositories\/(.+?)\/-\/(tags|manifests)\/([^/]+)\/?$/, nav: 'repositories',
    load: () => import('./image.js')},
  {re: /^\/ui\/repositories\/(.+?)\/?$/, nav: 'repositories', load: () => import('./repository.js')},
  {re: /^\/ui\/storage\/?$/, nav: 'storage', load: () => import('./storage.js')},
  {re: /^\/ui\/status\/?$/, nav: 'status', load: () => import('./status.js')},
  {re: /^\/ui\/sign-in\/?$/, nav: 'sign-in', load: () => import('./signin.js')},
];

let main = null; // the page's <main>, found at start
let current = null; // the page being shown: its AbortController
let first = true;

// The OCI grammar of what a URL names: a page is only drawn for a valid
// repository name, tag or digest (never "a/../b", which the API calls built
// from it would resolve to another repository).
const NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

function decode(parts) {
  try {
    const out = parts.map((p) => decodeURIComponent(p));
    if (out.length >= 1 && !NAME.test(out[0])) return null;
    if (out.length === 3 && !(out[1] === 'tags' ? TAG : DIGEST).test(out[2])) return null;
    return out;
  } catch {
    return null;
  }
}

export function navigate(url, {replace = false} = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

function signInHref() {
  return `/ui/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`;
}

// A page's error, said plainly.
export function showError(where, e) {
  if (e && e.name === 'AbortError') return;
  let text = e && e.message ? e.message : String(e);
  if (e instanceof ApiError) {
    if (e.status === 401) {
      where.append(h('p', {class: 'notice error', role: 'alert'}, 'You need to sign in to see this. ',
        h('a', {href: signInHref()}, 'Sign in')));
      return;
    }
    if (e.status === 403) text = `Your account may not do this: ${e.message}`;
    else if (e.status === 404) text = `Not found: ${e.message}`;
  }
  where.append(notice(text));
}

// Who is signed in, in the header: a name and Sign out, or Sign in.
export async function showWho() {
  const box = document.getElementById('who');
  const s = await loadSession();
  clear(box);
  if (!s || s.auth === 'none') return;
  if (s.user) {
    box.append(h('span', null, 'Signed in as ', h('strong', null, s.user)));
    if (s.via === 'session') {
      box.append(h('button', {type: 'button', class: 'small', onclick: async () => {
        try {
          await signOut();
        } finally {
          location.assign('/ui/sign-in');
        }
      }}, 'Sign out'));
    }
  } else {
    box.append(h('a', {href: signInHref()}, 'Sign in'));
  }
}

async function render() {
  main = main || document.getElementById('main');
  if (current) current.abort();
  const ctl = new AbortController();
  current = ctl;
  const path = location.pathname;
  const page = pages.find((p) => p.re.test(path));
  for (const a of document.querySelectorAll('nav a[data-nav]')) {
    if (page && a.dataset.nav === page.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (page && page.redirect) {
    navigate(page.redirect, {replace: true});
    return;
  }
  const params = page ? decode(path.match(page.re).slice(1)) : null;
  if (!page || !params) {
    document.title = 'Not found · ringport';
    clear(main).append(h('h1', null, 'Not found'),
      h('p', null, 'No page here. ', h('a', {href: '/ui/repositories'}, 'See the repositories.')));
    return;
  }
  const focus = !first;
  first = false;
  try {
    const mod = await page.load();
    if (ctl.signal.aborted) return;
    await mod.render(main, {
      params,
      query: new URLSearchParams(location.search),
      signal: ctl.signal,
      title: (t) => { document.title = `${t} · ringport`; },
      navigate,
      showError,
      showWho,
    });
    // For bench/ui.py: from navigation start to a page drawn and taking input.
    if (!ctl.signal.aborted) performance.mark('rp-rendered');
    if (focus && !ctl.signal.aborted) {
      const h1 = main.querySelector('h1');
      if (h1) {
        h1.setAttribute('tabindex', '-1');
        h1.focus({preventScroll: false});
      }
    }
  } catch (e) {
    if (ctl.signal.aborted || (e && e.name === 'AbortError')) return;
    clear(main).append(h('h1', null, 'Something went wrong'));
    showError(main, e);
  }
}

// Links inside the app change the page without a reload.
document.addEventListener('click', (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) {
    return;
  }
  const a = ev.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/ui/') ||
      url.pathname.startsWith('/ui/assets/')) {
    return;
  }
  ev.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) {
    navigate(url.pathname + url.search + url.hash);
  }
});
window.addEventListener('popstate', () => render());
// Who is signed in is asked after the first page is drawn: it is not on
// the way to the first page.
function start() {
  render().finally(() => showWho());
}
// The script is async: it may run before the page is parsed (it never waits
// for the style sheet, which a deferred script would).
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start, {once: true});
else start();
