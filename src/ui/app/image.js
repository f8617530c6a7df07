// SPDX-License-Identifier: Apache-2.0
// One image (by tag or digest): the manifest as pretty JSON, the platforms
// of an index, the config (env, entrypoint, labels, history), the layers,
// and referrers (signatures, SBOMs, attestations) by artifact type.
import {add, clear, confirmDialog, facts, h, notice} from './dom.js';
import {admin, call, repoPath, seg} from './api.js';
import {ago, bytes, num, shortDigest, when} from './format.js';

const CONFIG_MAX = 4 << 20;

function link(name, digest, text) {
  return h('a', {href: `/ui/repositories/${repoPath(name)}/-/manifests/${seg(digest)}`, title: digest}, text || shortDigest(digest));
}

function kv(obj, caption) {
  const entries = Object.entries(obj || {});
  return h('table', {class: 'grid kv'}, h('caption', null, caption),
    h('thead', null, h('tr', null, h('th', {scope: 'col'}, 'Key'), h('th', {scope: 'col'}, 'Value'))),
    h('tbody', null, entries.length ? entries.map(([k, v]) => h('tr', null, h('th', {scope: 'row', class: 'mono'}, k), h('td', {class: 'mono wrap'}, String(v)))) :
      h('tr', null, h('td', {colspan: 2, class: 'muted'}, 'None.'))));
}

async function configSection(name, desc, signal) {
  const sec = h('section', {'aria-labelledby': 'config-h'}, h('h2', {id: 'config-h'}, 'Configuration'));
  if (!desc || !desc.digest) return null;
  if (desc.size > CONFIG_MAX) {
    sec.append(h('p', null, `The config blob is ${bytes(desc.size)}: too large to show here.`));
    return sec;
  }
  let cfg;
  try {
    const text = await call(`/v2/${repoPath(name)}/blobs/${seg(desc.digest)}`, {signal});
    cfg = typeof text === 'string' ? JSON.parse(text) : text;
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    sec.append(notice(`The config could not be read: ${e.message}`));
    return sec;
  }
  const c = cfg.config || {};
  add(sec,
    facts([
      cfg.os || cfg.architecture ? ['Platform', [cfg.os, cfg.architecture, cfg.variant].filter(Boolean).join('/')] : null,
      cfg.created ? ['Created', when(cfg.created)] : null,
      c.Entrypoint ? ['Entrypoint', h('code', null, JSON.stringify(c.Entrypoint))] : null,
      c.Cmd ? ['Command', h('code', null, JSON.stringify(c.Cmd))] : null,
      c.WorkingDir ? ['Working directory', h('code', null, c.WorkingDir)] : null,
      c.User ? ['User', h('code', null, c.User)] : null,
      c.ExposedPorts ? ['Exposed ports', Object.keys(c.ExposedPorts).join(', ')] : null,
    ]),
    kv(Object.fromEntries((c.Env || []).map((e) => { const i = String(e).indexOf('='); return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 1)]; })), 'Environment'),
    kv(c.Labels, 'Labels'));
  const hist = cfg.history || [];
  if (hist.length) {
    sec.append(h('table', {class: 'grid'}, h('caption', null, 'History'),
      h('thead', null, h('tr', null, ['Created', 'Step', 'Layer'].map((x) => h('th', {scope: 'col'}, x)))),
      h('tbody', null, hist.map((x) => h('tr', null,
        h('td', null, x.created ? when(x.created) : '—'),
        h('td', {class: 'mono wrap'}, x.created_by || x.comment || ''),
        h('td', null, x.empty_layer ? 'none' : 'yes'))))));
  }
  return sec;
}

export async function render(main, ctx) {
  const [name, kind, ref] = ctx.params;
  const byTag = kind === 'tags';
  ctx.title(byTag ? `${name}:${ref}` : `${name}@${shortDigest(ref)}`);
  const base = `repositories/${repoPath(name)}`;
  const v = await admin(`${base}/-/${kind}/${seg(ref)}`, {params: {body: 'true'}, signal: ctx.signal});
  let m = null;
  try {
    m = JSON.parse(v.body || 'null');
  } catch {
    m = null;
  }
  const status = h('div', {role: 'status'});
  clear(main).append(
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'},
      h('a', {href: '/ui/repositories'}, 'Repositories'), ' / ',
      h('a', {href: `/ui/repositories/${repoPath(name)}`}, name), ' / ',
      h('span', {'aria-current': 'page'}, byTag ? ref : shortDigest(ref))),
    h('h1', null, byTag ? `${name}:${ref}` : `${name}@${shortDigest(ref)}`),
    status,
    facts([
      ['Digest', h('code', {class: 'wrap'}, v.digest)],
      ['Media type', v.media_type],
      v.artifact_type ? ['Artifact type', v.artifact_type] : null,
      ['Size', `${bytes(v.total_bytes)} in all (manifest ${bytes(v.size_bytes)})${v.sizes_complete ? '' : ', still being counted'}`],
      ['Pushed', h('span', {title: when(v.tag_pushed || v.pushed)}, ago(v.tag_pushed || v.pushed))],
      ['Pulled', h('span', {title: when(v.tag_pulled || v.pulled)}, ago(v.tag_pulled || v.pulled))],
      v.tags && v.tags.length ? ['Tags', v.tags.map((t, i) => [i ? ', ' : '', h('a', {href: `/ui/repositories/${repoPath(name)}/-/tags/${seg(t)}`}, t)])] : null,
      v.subject ? ['Refers to', link(name, v.subject)] : null,
    ]));

  if (v.platforms && v.platforms.length) {
    main.append(h('section', {'aria-labelledby': 'plat-h'}, h('h2', {id: 'plat-h'}, 'Platforms'),
      h('table', {class: 'grid'}, h('caption', {class: 'sr-only'}, 'Platforms of this index'),
        h('thead', null, h('tr', null, ['Platform', 'Manifest'].map((x) => h('th', {scope: 'col'}, x)))),
        h('tbody', null, v.platforms.map((p) => h('tr', null,
          h('th', {scope: 'row'}, [p.os, p.architecture, p.variant].filter(Boolean).join('/') || 'unknown'),
          h('td', {class: 'mono'}, link(name, p.digest))))))));
  }

  if (m && Array.isArray(m.layers)) {
    const total = m.layers.reduce((a, l) => a + (Number(l.size) || 0), 0);
    main.append(h('section', {'aria-labelledby': 'layers-h'}, h('h2', {id: 'layers-h'}, 'Layers'),
      h('table', {class: 'grid'}, h('caption', {class: 'sr-only'}, 'Layers'),
        h('thead', null, h('tr', null, ['#', 'Digest', 'Media type', 'Size'].map((x) => h('th', {scope: 'col'}, x)))),
        h('tbody', null, m.layers.map((l, i) => h('tr', null,
          h('td', {class: 'num'}, String(i + 1)),
          h('td', {class: 'mono', title: l.digest}, shortDigest(l.digest)),
          h('td', null, l.mediaType || ''),
          h('td', {class: 'num'}, bytes(l.size))))),
        h('tfoot', null, h('tr', null, h('th', {scope: 'row', colspan: 3}, `${num(m.layers.length)} layers`), h('td', {class: 'num'}, bytes(total)))))));
  }

  const refs = v.referrers || [];
  const groups = new Map();
  for (const r of refs) {
    const k = r.artifact_type || r.media_type || 'unknown';
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  main.append(h('section', {'aria-labelledby': 'refs-h'}, h('h2', {id: 'refs-h'}, 'Referrers'),
    refs.length === 0 ? h('p', {class: 'muted'}, 'No signatures, SBOMs or attestations refer to this manifest.') :
      [...groups.entries()].map(([type, list]) => h('table', {class: 'grid referrers'},
        h('caption', null, `${type} (${list.length})`),
        h('thead', null, h('tr', null, ['Manifest', 'Size'].map((x) => h('th', {scope: 'col'}, x)))),
        h('tbody', null, list.map((r) => h('tr', null,
          h('td', {class: 'mono'}, link(name, r.digest)),
          h('td', {class: 'num'}, bytes(r.size_bytes)))))))));

  if (m && m.config) {
    const sec = await configSection(name, m.config, ctx.signal);
    if (sec) main.append(sec);
  }
  if (m && m.annotations) main.append(kv(m.annotations, 'Annotations'));

  main.append(h('section', {'aria-labelledby': 'json-h'}, h('h2', {id: 'json-h'}, 'Manifest'),
    h('pre', {class: 'json', tabindex: '0', 'aria-label': 'The manifest as JSON'},
      m ? JSON.stringify(m, null, 2) : (v.body || 'The manifest body is not available.'))));

  if (!byTag) {
    const f = v.delete_frees;
    main.append(h('section', {'aria-labelledby': 'del-h'}, h('h2', {id: 'del-h'}, 'Delete'),
      h('button', {type: 'button', class: 'danger', onclick: async () => {
        const ok = await confirmDialog({
          title: `Delete the manifest ${shortDigest(v.digest)}?`,
          body: [h('p', null, `The manifest and every tag of ${name} that points to it (${(v.tags || []).join(', ') || 'none'}) go.`),
            h('p', null, f ? `Garbage collection will then free ${bytes(f.bytes)}.` : '')],
          confirm: 'Delete manifest',
        });
        if (!ok) return;
        try {
          await admin(`${base}/-/manifests/${seg(v.digest)}`, {method: 'DELETE'});
          ctx.navigate(`/ui/repositories/${repoPath(name)}`);
        } catch (e) {
          ctx.showError(status, e);
        }
      }}, 'Delete manifest…')));
  }
}
