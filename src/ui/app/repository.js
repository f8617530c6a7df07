// SPDX-License-Identifier: Apache-2.0
// One repository: its sizes and activity, its tags (digest, size, push and
// pull times, platforms, pull commands), pulls per day, and deletes.
import {add, clear, confirmDialog, copyLine, facts, h, notice} from './dom.js';
import {admin, loadSession, repoPath, seg} from './api.js';
import {ago, bytes, num, shortDigest, when} from './format.js';
import {bars} from './chart.js';

const TAGS = 100;

function freesText(f) {
  if (!f) return 'What it frees is not known to your account.';
  const what = `${bytes(f.bytes)} (${num(f.blobs)} blobs, ${num(f.manifests)} manifests)`;
  return f.exact ? `Garbage collection will then free ${what}.` :
    `Garbage collection will then free about ${what}; sizes are still being counted.`;
}

export async function render(main, ctx) {
  const [name] = ctx.params;
  ctx.title(name);
  const base = `repositories/${repoPath(name)}`;
  const repo = await admin(base, {signal: ctx.signal});
  // The registry's address for pull commands: this one, or (when the UI has
  // an address of its own) the registry's, its host name this page's when
  // the registry listens on every address.
  const session = await loadSession();
  const reg = session && session.registry;
  const host = reg ? `${reg.host || location.hostname}:${reg.port}` : location.host;
  const status = h('div', {id: 'repo-status', role: 'status'});
  const tagsBox = h('div', {id: 'tags', class: 'scroll'});
  const more = h('div');
  clear(main).append(
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'},
      h('a', {href: '/ui/repositories'}, 'Repositories'), ' / ', h('span', {'aria-current': 'page'}, name)),
    h('h1', null, name),
    status,
    facts([
      ['Stored', `${bytes(repo.size_bytes)} (unique ${bytes(repo.unique_bytes)}, shared ${bytes(repo.shared_bytes)})`],
      ['Tags', num(repo.tags)],
      ['Manifests', num(repo.manifests)],
      ['Last push', h('span', {title: when(repo.last_push)}, ago(repo.last_push))],
      ['Last pull', h('span', {title: when(repo.last_pull)}, ago(repo.last_pull))],
      ['Pulls', num(repo.pulls)],
      repo.mirror ? ['Mirror', `a cache of the mirror ${repo.mirror}`] : null,
    ]),
    h('h2', null, 'Tags'), tagsBox, more,
    h('h2', null, 'Pulls per day'),
    bars(repo.pulls_per_day || [], {label: `Pulls per day of ${name}`, unit: 'pulls'}),
    h('h2', null, 'Delete'),
    h('p', null, `Deleting the repository removes all its tags and manifests. ${freesText(repo.delete_frees)}`),
    h('button', {type: 'button', class: 'danger', onclick: async () => {
      const ok = await confirmDialog({
        title: `Delete the repository ${name}?`,
        body: [h('p', null, `All ${num(repo.tags)} tags and ${num(repo.manifests)} manifests of `, h('strong', null, name), ' go.'),
          h('p', null, freesText(repo.delete_frees))],
        confirm: 'Delete repository',
      });
      if (!ok) return;
      try {
        await admin(base, {method: 'DELETE'});
        ctx.navigate('/ui/repositories');
      } catch (e) {
        ctx.showError(status, e);
      }
    }}, 'Delete repository…'));

  let offset = 0;
  const rows = h('tbody');
  const table = h('table', {class: 'grid', id: 'tags-table'},
    h('caption', {class: 'sr-only'}, `Tags of ${name}`),
    h('thead', null, h('tr', null, ['Tag', 'Digest', 'Size', 'Pushed', 'Pulled', 'Platforms', 'Pull', '']
      .map((c, i) => h('th', {scope: 'col'}, i === 7 ? h('span', {class: 'sr-only'}, 'Actions') : c)))),
    rows);
  tagsBox.append(table);

  function tagRow(t) {
    const ref = `${host}/${name}:${t.name}`;
    const platforms = (t.platforms || []).map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join('/'));
    const tr = h('tr', null,
      h('th', {scope: 'row'}, h('a', {href: `/ui/repositories/${repoPath(name)}/-/tags/${seg(t.name)}`}, t.name)),
      h('td', {class: 'mono'}, h('a', {href: `/ui/repositories/${repoPath(name)}/-/manifests/${seg(t.digest)}`, title: t.digest}, shortDigest(t.digest))),
      h('td', {class: 'num'}, bytes(t.total_bytes)),
      h('td', null, h('span', {title: when(t.tag_pushed || t.pushed)}, ago(t.tag_pushed || t.pushed))),
      h('td', null, h('span', {title: when(t.tag_pulled || t.pulled)}, ago(t.tag_pulled || t.pulled))),
      h('td', null, platforms.length ? platforms.join(', ') : '—'),
      h('td', null, copyLine(`docker pull ${ref}`, `docker pull command for ${t.name}`),
        copyLine(`podman pull ${ref}`, `podman pull command for ${t.name}`)),
      h('td', null, h('button', {type: 'button', class: 'danger small', 'aria-label': `Delete tag ${t.name}`,
        onclick: async () => {
          const ok = await confirmDialog({
            title: `Delete the tag ${t.name}?`,
            body: [h('p', null, 'The tag ', h('strong', null, t.name), ` of ${name} goes. Its manifest ${shortDigest(t.digest)} stays while another tag or index refers to it.`),
              h('p', null, freesText(t.delete_frees))],
            confirm: 'Delete tag',
          });
          if (!ok) return;
          try {
            await admin(`${base}/-/tags/${seg(t.name)}`, {method: 'DELETE'});
            tr.remove();
            status.replaceChildren(notice(`The tag ${t.name} was deleted.`, 'ok'));
          } catch (e) {
            ctx.showError(status, e);
          }
        }}, 'Delete')));
    return tr;
  }

  async function page() {
    const r = await admin(`${base}/-/tags`, {params: {offset, limit: TAGS}, signal: ctx.signal});
    add(rows, r.tags.map(tagRow));
    if (r.total === 0) add(rows, h('tr', null, h('td', {colspan: 8, class: 'muted'}, 'No tags.')));
    offset += r.tags.length;
    clear(more);
    if (offset < r.total) {
      more.append(h('button', {type: 'button', onclick: () => page().catch((e) => ctx.showError(more, e))},
        `Show more tags (${num(r.total - offset)} left)`));
    }
  }
  await page();
}
