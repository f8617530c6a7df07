// SPDX-License-Identifier: Apache-2.0
// The app: a router over the URL (every page has a deep link that survives
// a reload; the server answers any /ui/ path with this app), and the pages.
import {clear, h, notice} from './dom.js';
import {ApiError} from './api.js';

const pages = [
  {re: /^\/ui\/?$/, redirect: '/ui/repositories'},
  {re: /^\/ui\/repositories\/?$/, nav: 'repositories', load: () => import('./repositories.js')},
  {re: /^\/ui\/repositories\/(.+?)\/-\/(tags|manifests)\/([^/]+)\/?$/, nav: 'repositories',
    load: () => import('./image.js')},
  {re: /^\/ui\/repositories\/(.+?)\/?$/, nav: 'repositories', load: () => import('./repository.js')},
  {re: /^\/ui\/storage\/?$/, nav: 'storage', load: () => import('./storage.js')},
  {re: /^\/ui\/status\/?$/, nav: 'status', load: () => import('./status.js')},
];

const main = document.getElementById('main');
let current = null; // the page being shown: its AbortController
let first = true;

function decode(parts) {
  try {
    return parts.map((p) => decodeURIComponent(p));
  } catch {
    return null;
  }
}

export function navigate(url, {replace = false} = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

// A page's error, said plainly.
export function showError(where, e) {
  if (e && e.name === 'AbortError') return;
  let text = e && e.message ? e.message : String(e);
  if (e instanceof ApiError) {
    if (e.status === 401) text = 'Sign-in is required to see this.';
    else if (e.status === 403) text = 'Your account may not see this.';
    else if (e.status === 404) text = `Not found: ${e.message}`;
  }
  where.append(notice(text));
}

async function render() {
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
render();
