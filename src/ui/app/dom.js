// SPDX-License-Identifier: Apache-2.0
// Elements are built from text, never from markup: nothing the registry
// returns (names, tags, labels, annotations) is ever parsed as HTML.

const SVG = 'http://www.w3.org/2000/svg';

function safeUrl(v) {
  const s = String(v);
  // Links stay on this origin (or go to an http(s) page): no javascript: or data: URLs.
  if (s.startsWith('/') && !s.startsWith('//')) return s;
  if (s.startsWith('#') || s.startsWith('?')) return s;
  if (/^https?:\/\//i.test(s)) return s;
  return '#';
}

function set(el, props) {
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'href' || k === 'src' || k === 'action') el.setAttribute(k, safeUrl(v));
    else if (k === 'value' && 'value' in el) el.value = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

export function add(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h('a', {href: '/ui/x', class: 'k'}, 'text', child, ...)
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  set(el, props);
  return add(el, ...children);
}

export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG, tag);
  set(el, props);
  return add(el, ...children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// A definition list from [term, value] pairs (values may be nodes).
export function facts(pairs) {
  return h('dl', {class: 'facts'},
    pairs.filter((p) => p).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

// A table with a caption (visually hidden when `hideCaption`), headers and rows of cells.
export function table({caption, hideCaption = false, head, rows, empty = 'Nothing here.'}) {
  const t = h('table', {class: 'grid'},
    h('caption', {class: hideCaption ? 'sr-only' : null}, caption),
    h('thead', null, h('tr', null, head.map((c) => c instanceof Node ? c : h('th', {scope: 'col'}, c)))));
  const body = h('tbody');
  if (rows.length === 0) {
    add(body, h('tr', null, h('td', {colspan: head.length, class: 'muted'}, empty)));
  }
  for (const r of rows) add(body, h('tr', null, r.map((c) => h('td', null, c))));
  return add(t, body);
}

// A message in the page: role=alert for errors, status otherwise.
export function notice(text, kind = 'error') {
  return h('p', {class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status'}, text);
}

// A modal confirmation that names what goes. Resolves true when confirmed.
export function confirmDialog({title, body, confirm = 'Delete'}) {
  return new Promise((resolve) => {
    const id = `dlg-${Math.random().toString(36).slice(2)}`;
    const dlg = h('dialog', {class: 'confirm', 'aria-labelledby': `${id}-h`});
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    const cancel = h('button', {type: 'button', onclick: () => done(false)}, 'Cancel');
    add(dlg,
      h('h2', {id: `${id}-h`}, title),
      h('div', null, body),
      h('div', {class: 'actions'}, cancel,
        h('button', {type: 'button', class: 'danger', onclick: () => done(true)}, confirm)));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

// A read-only command with a button that copies it.
export function copyLine(text, label) {
  const input = h('input', {type: 'text', readonly: true, value: text, 'aria-label': label, class: 'mono'});
  const btn = h('button', {type: 'button', class: 'small', onclick: async () => {
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = 'Copied';
    } catch {
      input.select();
      btn.textContent = 'Select and copy';
    }
    setTimeout(() => { btn.textContent = 'Copy'; }, 1500);
  }}, 'Copy');
  return h('span', {class: 'copy'}, input, btn);
}
