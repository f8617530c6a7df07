// SPDX-License-Identifier: Apache-2.0
// Status: version, uptime, shards, connections, request rates, mirror
// upstreams and the webhook backlog. Refreshed every 5 s while shown.
import {clear, facts, h} from './dom.js';
import {admin} from './api.js';
import {bytes, duration, num} from './format.js';
import {bars} from './chart.js';

const REFRESH_MS = 5000;
const REFRESHES_MAX = 8640; // a day of an open tab

export async function render(main, ctx) {
  ctx.title('Status');
  const body = h('div', {id: 'status-body'});
  clear(main).append(h('h1', null, 'Status'), body);
  async function draw() {
    const [st, ts, mi] = await Promise.all([
      admin('status', {signal: ctx.signal}),
      admin('timeseries', {params: {days: 1}, signal: ctx.signal}),
      admin('mirrors', {signal: ctx.signal}).catch(() => ({mirrors: []})),
    ]);
    const idx = st.index || {};
    const hooks = st.webhooks || [];
    const perMinute = (ts.requests_per_minute || []).map((p) => ({day: p.minute, value: p.requests}));
    clear(body).append(
      facts([
        ['Version', st.version],
        ['Uptime', duration(st.uptime_s)],
        ['Shards', num(st.shard_count)],
        ['Connections', num(st.connections)],
        ['Index', idx.ready ? `${num(idx.repositories)} repositories, ${num(idx.tags)} tags, ${num(idx.manifests)} manifests` : 'loading'],
        ['Upload sessions', st.uploads ? `${num(st.uploads.sessions)} of ${num(st.uploads.sessions_max)}` : '—'],
        ['Memory', st.memory ? bytes(st.memory.rss_bytes) : '—'],
      ]),
      h('section', {'aria-labelledby': 'rate-h'}, h('h2', {id: 'rate-h'}, 'Requests per minute'),
        bars(perMinute, {label: 'Requests per minute, last hour', time: true})),
      h('section', {'aria-labelledby': 'up-h'}, h('h2', {id: 'up-h'}, 'Mirror upstreams'),
        mi.mirrors.length === 0 ? h('p', {class: 'muted'}, 'No mirrors are configured.') :
          h('table', {class: 'grid'}, h('caption', {class: 'sr-only'}, 'Mirror upstreams'),
            h('thead', null, h('tr', null, ['Prefix', 'Upstream', 'State', 'Hit rate', 'In flight'].map((c) => h('th', {scope: 'col'}, c)))),
            h('tbody', null, mi.mirrors.map((m) => h('tr', null,
              h('th', {scope: 'row'}, m.prefix || '(default)'), h('td', null, m.url),
              h('td', null, m.upstream_down ? h('span', {class: 'bad'}, 'down') : h('span', {class: 'good'}, 'up')),
              h('td', {class: 'num'}, `${m.hit_ratio_percent}%`), h('td', {class: 'num'}, num(m.fetches_in_flight))))))),
      h('section', {'aria-labelledby': 'hooks-h'}, h('h2', {id: 'hooks-h'}, 'Webhooks'),
        hooks.length === 0 ? h('p', {class: 'muted'}, 'No webhook endpoints are configured.') :
          h('table', {class: 'grid'}, h('caption', {class: 'sr-only'}, 'Webhook endpoints'),
            h('thead', null, h('tr', null, ['Endpoint', 'State', 'Backlog', 'Delivered', 'Failures', 'Lost'].map((c) => h('th', {scope: 'col'}, c)))),
            h('tbody', null, hooks.map((w) => h('tr', null,
              h('th', {scope: 'row'}, w.name),
              h('td', null, w.disabled ? 'disabled' : w.failing ? h('span', {class: 'bad'}, 'failing') : h('span', {class: 'good'}, 'delivering')),
              h('td', {class: 'num'}, num(w.backlog)), h('td', {class: 'num'}, num(w.delivered)),
              h('td', {class: 'num'}, num(w.failures)), h('td', {class: 'num'}, num(w.lost))))))));
  }
  await draw();
  (async () => {
    for (let i = 0; i < REFRESHES_MAX && !ctx.signal.aborted; i++) {
      await new Promise((r) => setTimeout(r, REFRESH_MS));
      if (ctx.signal.aborted) return;
      try {
        await draw();
      } catch (e) {
        if (e.name === 'AbortError') return;
      }
    }
  })();
}
