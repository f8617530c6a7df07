// SPDX-License-Identifier: Apache-2.0
// Storage: totals, the deduplication ratio, the top repositories, stored
// bytes and pulls over time, and garbage collection and retention runs
// (start a run or a dry run, and follow it).
import {add, clear, facts, h, notice} from './dom.js';
import {admin, repoPath} from './api.js';
import {bytes, num, shortDigest, when} from './format.js';
import {bars, line, top} from './chart.js';

const POLL_MS = 500;
const POLLS_MAX = 7200; // an hour of following one run

function runFacts(kind, r) {
  if (!r || r.phase === 'idle' || !r.run) return h('p', {class: 'muted'}, `No ${kind} run since the server started.`);
  const rows = [
    ['Run', `#${r.run}${r.dry_run ? ' (dry run)' : ''}`],
    ['Phase', r.phase],
    ['Started', when(r.started_at)],
    r.ended_at ? ['Ended', when(r.ended_at)] : null,
  ];
  if (kind === 'GC') {
    rows.push(['Blobs', `${num(r.blobs_scanned)} scanned, ${num(r.blobs_eligible)} unreferenced, ${num(r.blobs_deleted)} deleted`],
      ['Manifests', `${num(r.manifests_eligible)} untagged eligible, ${num(r.manifests_deleted)} deleted`],
      [r.dry_run ? 'Would free' : 'Freed', bytes(r.bytes_freed)],
      r.errors ? ['Errors', num(r.errors)] : null);
  } else {
    rows.push(['Tags', `${num(r.tags_examined)} examined, ${num(r.tags_deleted)} ${r.dry_run ? 'to delete' : 'deleted'}`],
      ['Manifests', `${num(r.manifests_deleted)} ${r.dry_run ? 'to delete' : 'deleted'}`],
      r.skipped ? ['Skipped', num(r.skipped)] : null,
      r.errors ? ['Errors', num(r.errors)] : null);
  }
  const out = [facts(rows)];
  // What a retention run deletes (or would): each tag or manifest and why.
  if (kind !== 'GC' && r.items && r.items.length) {
    out.push(h('table', {class: 'grid', id: 'retention-items'},
      h('caption', null, `${r.dry_run ? 'Would delete' : 'Deleted'}${r.items_truncated ? ' (the first of them)' : ''}`),
      h('thead', null, h('tr', null, ['Repository', 'Tag', 'Manifest', 'Why'].map((c) => h('th', {scope: 'col'}, c)))),
      h('tbody', null, r.items.map((it) => h('tr', null,
        h('td', null, it.repository), h('td', null, it.tag || '—'),
        h('td', {class: 'mono', title: it.digest}, shortDigest(it.digest)),
        h('td', null, String(it.reason).replaceAll('_', ' ')))))));
  }
  return out;
}

function runPanel(kind, path, ctx, canUntagged) {
  const box = h('div', {'aria-live': 'polite'});
  const msg = h('div');
  const untagged = canUntagged ? h('input', {type: 'checkbox', id: `${path}-untagged`}) : null;
  let polling = false;
  async function show() {
    const r = await admin(path, {signal: ctx.signal});
    add(clear(box), runFacts(kind, r));
    return r;
  }
  async function follow() {
    if (polling) return;
    polling = true;
    try {
      for (let i = 0; i < POLLS_MAX && !ctx.signal.aborted; i++) {
        const r = await show();
        if (r.phase === 'done' || r.phase === 'idle' || r.phase === 'failed') break;
        await new Promise((res) => setTimeout(res, POLL_MS));
      }
    } catch (e) {
      ctx.showError(msg, e);
    } finally {
      polling = false;
    }
  }
  async function start(dry) {
    clear(msg);
    try {
      const params = {dry_run: dry ? 'true' : 'false'};
      if (untagged && untagged.checked) params.delete_untagged = 'true';
      await admin(path, {method: 'POST', params, signal: ctx.signal});
      msg.append(notice(`${kind[0].toUpperCase()}${kind.slice(1)} ${dry ? 'dry run' : 'run'} started.`, 'ok'));
    } catch (e) {
      if (e.status === 409) msg.append(notice(`A ${kind} run is already going: following it.`, 'ok'));
      else { ctx.showError(msg, e); return; }
    }
    follow();
  }
  const panel = h('div', {class: 'panel'},
    h('div', {class: 'actions'},
      h('button', {type: 'button', onclick: () => start(true)}, `Start a ${kind} dry run`),
      h('button', {type: 'button', class: 'danger', onclick: () => start(false)}, `Start a ${kind} run`),
      untagged ? h('label', {class: 'check'}, untagged, ' also delete untagged manifests') : null),
    msg, box);
  show().then((r) => { if (r.phase !== 'done' && r.phase !== 'idle') follow(); })
    .catch((e) => ctx.showError(box, e));
  return panel;
}

export async function render(main, ctx) {
  ctx.title('Storage');
  const [ins, ts] = await Promise.all([
    admin('insights', {params: {top: 10}, signal: ctx.signal}),
    admin('timeseries', {params: {days: 30}, signal: ctx.signal}),
  ]);
  const repoItems = (list, value) => list.map((r) => ({label: r.name, value: r[value], href: `/ui/repositories/${repoPath(r.name)}`}));
  clear(main).append(
    h('h1', null, 'Storage'),
    facts([
      ['Stored', `${bytes(ins.size_bytes)}${ins.sizes_complete ? '' : ' (still being counted)'}`],
      ['Without deduplication', bytes(ins.logical_bytes)],
      ['Deduplication ratio', `${(ins.deduplication_ratio_percent / 100).toFixed(2)}×`],
      ['Blobs', num(ins.blobs)],
      ['Repositories', num(ins.repositories)],
      ['Tags', num(ins.tags)],
      ['Manifests', num(ins.manifests)],
      ['Pulls', `${num(ins.pulls)} in the last ${num(ins.pull_days)} days`],
    ]),
    h('div', {class: 'two'},
      h('section', {'aria-labelledby': 'stored-h'}, h('h2', {id: 'stored-h'}, 'Stored bytes'),
        line(ts.stored_bytes, {label: 'Stored bytes per day', fmt: bytes})),
      h('section', {'aria-labelledby': 'pulls-h'}, h('h2', {id: 'pulls-h'}, 'Pulls per day'),
        bars(ts.pulls, {label: 'Pulls per day'}))),
    h('div', {class: 'two'},
      h('section', {'aria-labelledby': 'top-size-h'}, h('h2', {id: 'top-size-h'}, 'Largest repositories'),
        top(repoItems(ins.top_by_size || [], 'size_bytes'), {label: 'Top 10 by stored bytes', fmt: bytes})),
      h('section', {'aria-labelledby': 'top-pulls-h'}, h('h2', {id: 'top-pulls-h'}, 'Most pulled'),
        top(repoItems(ins.top_by_pulls || [], 'pulls'), {label: 'Top 10 by pulls'}))),
    h('section', {'aria-labelledby': 'gc-h'}, h('h2', {id: 'gc-h'}, 'Garbage collection'),
      h('p', null, 'A run removes blobs nothing refers to, while the registry keeps serving. A dry run only counts them.'),
      runPanel('GC', 'gc', ctx, true)),
    h('section', {'aria-labelledby': 'ret-h'}, h('h2', {id: 'ret-h'}, 'Retention'),
      h('p', null, 'A run applies the configured retention policies; a dry run lists what they would delete.'),
      runPanel('retention', 'retention', ctx, false)));
  if (ins.mirrors && ins.mirrors.length) {
    add(main, h('section', {'aria-labelledby': 'mir-h'}, h('h2', {id: 'mir-h'}, 'Mirror hit rates'),
      top(ins.mirrors.map((m) => ({label: m.prefix || '(default)', value: m.hit_ratio_percent})), {label: 'Hit rate per mirror', fmt: (v) => `${v}%`})));
  }
}
