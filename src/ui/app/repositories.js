// SPDX-License-Identifier: Apache-2.0
// The repository list: search as you type (the server searches and pages;
// the UI never fetches the whole catalog), sort by any column, pages of 50.
import {add, clear, h} from './dom.js';
import {admin, repoPath} from './api.js';
import {ago, bytes, num, when} from './format.js';

const LIMIT = 50;
const columns = [
  {key: 'name', label: 'Repository'},
  {key: 'size', label: 'Size', numeric: true},
  {key: 'tags', label: 'Tags', numeric: true},
  {key: 'last_push', label: 'Last push'},
  {key: 'last_pull', label: 'Last pull'},
  {key: 'pulls', label: 'Pulls', numeric: true},
];
const views = [['', 'All'], ['false', 'Hosted'], ['true', 'Mirrored']];

function stateOf(q) {
  const sort = columns.some((c) => c.key === q.get('sort')) ? q.get('sort') : 'name';
  const order = q.get('order') === 'asc' || q.get('order') === 'desc' ? q.get('order') : '';
  const mirrored = q.get('mirrored') === 'true' || q.get('mirrored') === 'false' ? q.get('mirrored') : '';
  return {q: q.get('q') || '', sort, order, mirrored, offset: Math.max(0, parseInt(q.get('offset') || '0', 10) || 0)};
}

function urlOf(st) {
  const p = new URLSearchParams();
  if (st.q) p.set('q', st.q);
  if (st.sort !== 'name') p.set('sort', st.sort);
  if (st.order) p.set('order', st.order);
  if (st.mirrored) p.set('mirrored', st.mirrored);
  if (st.offset) p.set('offset', String(st.offset));
  const s = p.toString();
  return `/ui/repositories${s ? `?${s}` : ''}`;
}

function orderOf(st) {
  return st.order || (st.sort === 'name' ? 'asc' : 'desc');
}

export async function render(main, ctx) {
  ctx.title('Repositories');
  const st = stateOf(ctx.query);
  const search = h('input', {
    type: 'search', id: 'repo-search', name: 'q', autocomplete: 'off', spellcheck: 'false',
    value: st.q, 'aria-controls': 'repo-results', placeholder: 'Part of a name',
  });
  const count = h('p', {id: 'repo-count', class: 'muted', role: 'status'});
  const results = h('div', {id: 'repo-results', class: 'scroll'});
  const pager = h('nav', {class: 'pager', 'aria-label': 'Pages of repositories'});
  const viewButtons = views.map(([v, label]) => h('button', {
    type: 'button', 'aria-pressed': String(st.mirrored === v),
    onclick: () => { st.mirrored = v; st.offset = 0; load(); },
  }, label));
  const mirrors = h('section', {id: 'mirrors', 'aria-labelledby': 'mirrors-h', hidden: true});
  clear(main).append(
    h('h1', null, 'Repositories'),
    h('div', {class: 'toolbar'},
      h('form', {class: 'search', role: 'search', onsubmit: (e) => e.preventDefault()},
        h('label', {for: 'repo-search'}, 'Search'), search),
      h('div', {class: 'segmented', role: 'group', 'aria-label': 'Which repositories'}, viewButtons)),
    count, results, pager, mirrors);

  let inflight = null;
  let timer = 0;
  ctx.signal.addEventListener('abort', () => { clearTimeout(timer); if (inflight) inflight.abort(); });

  function header(c) {
    const active = st.sort === c.key;
    const th = h('th', {scope: 'col', class: c.numeric ? 'num' : null,
      'aria-sort': active ? (orderOf(st) === 'asc' ? 'ascending' : 'descending') : null});
    const arrow = active ? (orderOf(st) === 'asc' ? ' ▲' : ' ▼') : '';
    th.append(h('button', {type: 'button', class: 'sort', onclick: () => {
      if (st.sort === c.key) st.order = orderOf(st) === 'asc' ? 'desc' : 'asc';
      else { st.sort = c.key; st.order = ''; }
      st.offset = 0;
      load();
    }}, c.label, h('span', {'aria-hidden': 'true'}, arrow)));
    return th;
  }

  function draw(r) {
    for (const [i, [v]] of views.entries()) viewButtons[i].setAttribute('aria-pressed', String(st.mirrored === v));
    const rows = r.repositories.map((x) => h('tr', null,
      h('th', {scope: 'row'}, h('a', {href: `/ui/repositories/${repoPath(x.name)}`}, x.name),
        x.mirror ? h('span', {class: 'badge'}, 'mirror') : null),
      h('td', {class: 'num'}, bytes(x.size_bytes)),
      h('td', {class: 'num'}, num(x.tags)),
      h('td', null, h('span', {title: when(x.last_push)}, ago(x.last_push))),
      h('td', null, h('span', {title: when(x.last_pull)}, ago(x.last_pull))),
      h('td', {class: 'num'}, num(x.pulls))));
    const t = h('table', {class: 'grid', id: 'repo-table'},
      h('caption', {class: 'sr-only'}, 'Repositories'),
      h('thead', null, h('tr', null, columns.map(header))),
      h('tbody', null, rows.length ? rows : h('tr', null, h('td', {colspan: columns.length, class: 'muted'},
        st.q ? `No repository name contains “${st.q}”.` : 'No repositories yet.'))));
    clear(results).append(t);
    const last = Math.min(r.offset + r.repositories.length, r.total);
    count.textContent = r.total === 0 ? '0 repositories' :
      `${num(r.offset + 1)}–${num(last)} of ${num(r.total)} ${r.total === 1 ? 'repository' : 'repositories'}`;
    clear(pager);
    if (r.total > LIMIT) {
      add(pager,
        h('button', {type: 'button', disabled: r.offset === 0,
          onclick: () => { st.offset = Math.max(0, st.offset - LIMIT); load(); }}, '‹ Previous'),
        h('span', {class: 'muted'}, `Page ${num(Math.floor(r.offset / LIMIT) + 1)} of ${num(Math.ceil(r.total / LIMIT))}`),
        h('button', {type: 'button', disabled: last >= r.total,
          onclick: () => { st.offset += LIMIT; load(); }}, 'Next ›'));
    }
  }

  async function load() {
    if (inflight) inflight.abort();
    const ctl = new AbortController();
    inflight = ctl;
    history.replaceState(null, '', urlOf(st));
    results.setAttribute('aria-busy', 'true');
    try {
      const r = await admin('repositories', {
        params: {q: st.q, sort: st.sort, order: st.order, mirrored: st.mirrored, offset: st.offset, limit: LIMIT},
        signal: ctl.signal,
      });
      if (!ctl.signal.aborted) draw(r);
    } catch (e) {
      if (e.name === 'AbortError') return;
      clear(results);
      count.textContent = '';
      ctx.showError(results, e);
    } finally {
      if (inflight === ctl) results.removeAttribute('aria-busy');
    }
  }

  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      st.q = search.value.trim();
      st.offset = 0;
      load();
    }, 100);
  });

  await load();
  loadMirrors(mirrors, ctx.signal);
}

// Mirrored prefixes, apart from the list, with their hit rates (admins only:
// others never see the section).
async function loadMirrors(section, signal) {
  let r;
  try {
    r = await admin('mirrors', {signal});
  } catch {
    return;
  }
  if (!r.mirrors || r.mirrors.length === 0) return;
  section.append(h('h2', {id: 'mirrors-h'}, 'Mirrors'),
    h('table', {class: 'grid'},
      h('caption', {class: 'sr-only'}, 'Mirrored prefixes'),
      h('thead', null, h('tr', null, ['Prefix', 'Upstream', 'Hit rate', 'Hits', 'Misses', 'Cache', 'Upstream state']
        .map((c) => h('th', {scope: 'col'}, c)))),
      h('tbody', null, r.mirrors.map((m) => h('tr', null,
        h('th', {scope: 'row'}, h('a', {href: `/ui/repositories?mirrored=true&q=${encodeURIComponent(m.prefix)}`}, m.prefix || '(default)')),
        h('td', null, m.url),
        h('td', {class: 'num'}, `${m.hit_ratio_percent}%`),
        h('td', {class: 'num'}, num(m.hits)),
        h('td', {class: 'num'}, num(m.misses)),
        h('td', {class: 'num'}, m.cache_bytes < 0 ? '—' : bytes(m.cache_bytes)),
        h('td', null, m.upstream_down ? h('span', {class: 'bad'}, 'down') : h('span', {class: 'good'}, 'up')))))));
  section.hidden = false;
}
