// SPDX-License-Identifier: Apache-2.0
// Drives ringport's web UI in Debian's Chromium (playwright-core), one
// scenario per run: `node drive.mjs <scenario> <base url> <out dir> [json]`.
// test_browser_ui.py starts the registry, pushes what a scenario needs, runs it and
// checks the registry's side. A scenario exits 0 when every check held; a
// failed check prints what it saw and exits 1. Every page a scenario shows
// is checked by axe-core (no serious or critical violation), and any page
// error, console error, dialog or CSP violation fails the run.
import {readFileSync, mkdirSync} from 'node:fs';
import {createRequire} from 'node:module';
import path from 'node:path';
import {chromium} from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const [scenario, base, outDir, argText] = process.argv.slice(2);
const args = argText ? JSON.parse(argText) : {};
const WAIT = 15000;

class Failure extends Error {}
function check(cond, what) {
  if (!cond) throw new Failure(what);
}

const problems = []; // page errors, console errors, dialogs, CSP violations

async function axe(page, name) {
  // Injected with evaluate: the strict CSP blocks addScriptTag, and
  // bypassCSP would void the XSS checks.
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(axeSource);
  const r = await page.evaluate(() => window.axe.run(document, {
    runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']},
  }));
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `axe on ${name}: ${JSON.stringify(bad.map((v) => ({id: v.id, impact: v.impact,
    nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' '))})))}`);
  return r.violations.length;
}

async function shot(page, name) {
  mkdirSync(outDir, {recursive: true});
  await page.screenshot({path: path.join(outDir, `${name}.png`), fullPage: true});
}

async function rows(page, sel = '#repo-table tbody tr') {
  return page.locator(sel).count();
}

async function repoNames(page) {
  return page.locator('#repo-table tbody th a').allTextContents();
}

const scenarios = {
  // The list: first page, search as you type, sort, pages, a reload keeps it all.
  async browse(page) {
    await page.goto(`${base}/ui/`);
    await page.waitForURL(/\/ui\/repositories$/);
    await page.locator('#repo-table tbody th a').first().waitFor({timeout: WAIT});
    check(await rows(page) === 50, `first page has ${await rows(page)} rows, want 50`);
    const count = await page.locator('#repo-count').textContent();
    check(count.includes(`of ${args.total.toLocaleString('en-US')}`), `count says "${count}"`);
    await axe(page, 'repositories');
    await shot(page, 'repositories');

    // Typed one key at a time, as a person does: the list follows.
    await page.locator('#repo-search').focus();
    await page.keyboard.type(args.search, {delay: 40});
    await page.waitForFunction((q) => {
      const names = [...document.querySelectorAll('#repo-table tbody th a')].map((a) => a.textContent);
      return names.length > 0 && names.every((n) => n.includes(q)) && location.search.includes(`q=${q}`);
    }, args.search, {timeout: WAIT});
    const found = await repoNames(page);
    check(found.length === args.matches, `search "${args.search}" shows ${found.length}, want ${args.matches}`);

    // Sorted by size, largest first; the header says so.
    await page.getByRole('button', {name: /^Size/}).click();
    await page.waitForFunction(() => location.search.includes('sort=size'), null, {timeout: WAIT});
    await page.waitForFunction(() => document.querySelector('#repo-table th[aria-sort]')?.textContent.startsWith('Size'), null, {timeout: WAIT});
    check(await page.locator('#repo-table th[aria-sort="descending"]').count() === 1, 'size sort is not marked descending');
    const first = (await repoNames(page))[0];
    check(first === args.largest, `largest matching repository is "${first}", want "${args.largest}"`);

    // A reload shows the same (the state is in the URL).
    await page.reload();
    await page.locator('#repo-table tbody th a').first().waitFor({timeout: WAIT});
    check(await page.locator('#repo-search').inputValue() === args.search, 'the search text is lost on reload');
    check((await repoNames(page))[0] === args.largest, 'the sort is lost on reload');

    // Pages of the whole list.
    await page.locator('#repo-search').fill('');
    await page.waitForFunction(() => !location.search.includes('q='), null, {timeout: WAIT});
    await page.getByRole('button', {name: 'Next ›'}).click();
    await page.waitForFunction(() => location.search.includes('offset=50'), null, {timeout: WAIT});
    await page.waitForFunction(() => /^51–/.test(document.querySelector('#repo-count').textContent), null, {timeout: WAIT});
    // Keyboard: the search field is reachable by Tab from the top of the page.
    await page.goto(`${base}/ui/repositories`);
    await page.locator('#repo-table tbody th a').first().waitFor({timeout: WAIT});
    let reached = false;
    for (let i = 0; i < 12 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.id === 'repo-search');
    }
    check(reached, 'the search field cannot be reached with Tab');
  },

  // A multi-arch image: its tags, platforms, referrers, config and layers.
  async image(page) {
    await page.goto(`${base}/ui/repositories/${args.name}`);
    const tagLink = page.locator('#tags-table tbody th a', {hasText: args.tag});
    await tagLink.waitFor({timeout: WAIT});
    const pull = await page.locator('#tags-table input[readonly]').first().inputValue();
    // The registry's address: this page's, or (the UI on an address of its
    // own) the one the test names.
    const registry = args.registry || new URL(base).host;
    check(pull === `docker pull ${registry}/${args.name}:${args.tag}`, `pull line is "${pull}"`);
    await axe(page, 'repository');
    await shot(page, 'repository');
    await tagLink.click();
    await page.waitForURL(new RegExp(`/ui/repositories/${args.name}/-/tags/${args.tag}$`));
    await page.locator('#plat-h').waitFor({timeout: WAIT});
    const plats = await page.locator('section[aria-labelledby="plat-h"] tbody th').allTextContents();
    check(JSON.stringify(plats) === JSON.stringify(['linux/amd64', 'linux/arm64']), `platforms: ${plats}`);
    const caption = await page.locator('table.referrers caption').allTextContents();
    check(caption.some((c) => c.includes(args.artifactType)), `referrer captions: ${caption}`);
    const json = await page.locator('pre.json').textContent();
    check(JSON.parse(json).manifests.length === 2, 'the index JSON is not shown whole');
    await axe(page, 'image index');
    await shot(page, 'image-index');
    // One platform's image: layers and config.
    await page.locator('section[aria-labelledby="plat-h"] tbody a').first().click();
    await page.locator('#layers-h').waitFor({timeout: WAIT});
    await page.locator('#config-h').waitFor({timeout: WAIT});
    const env = await page.locator('table.kv', {hasText: 'Environment'}).textContent();
    check(env.includes(args.envKey), `environment table: ${env}`);
    const labels = await page.locator('table.kv', {hasText: 'Labels'}).textContent();
    check(labels.includes(args.labelValue), `labels table: ${labels}`);
    check(await page.locator('section[aria-labelledby="layers-h"] tbody tr').count() === args.layers, 'layer count');
    await axe(page, 'image');
    await shot(page, 'image');
    // Back to the index, by history.
    await page.goBack();
    await page.locator('#plat-h').waitFor({timeout: WAIT});
  },

  // Deleting a tag names it, asks, and removes it (test_browser_ui.py checks /v2/).
  async delete(page) {
    await page.goto(`${base}/ui/repositories/${args.name}`);
    const button = page.getByRole('button', {name: `Delete tag ${args.tag}`});
    await button.waitFor({timeout: WAIT});
    await button.click();
    const dlg = page.getByRole('dialog');
    await dlg.waitFor({timeout: WAIT});
    const text = await dlg.textContent();
    check(text.includes(args.tag) && text.includes('Garbage collection will then free'), `dialog says: ${text}`);
    await axe(page, 'delete dialog');
    // Cancel first: nothing goes.
    await dlg.getByRole('button', {name: 'Cancel'}).click();
    check(await page.locator('#tags-table tbody th a', {hasText: args.tag}).count() === 1, 'cancel removed the row');
    await button.click();
    await page.getByRole('dialog').getByRole('button', {name: 'Delete tag'}).click();
    await page.locator('#repo-status', {hasText: 'was deleted'}).waitFor({timeout: WAIT});
    check(await page.locator('#tags-table tbody th a', {hasText: new RegExp(`^${args.tag}$`)}).count() === 0, 'the row stayed');
  },

  // Storage: totals and charts, then a GC dry run followed to its end.
  async storage(page) {
    await page.goto(`${base}/ui/storage`);
    await page.locator('#gc-h').waitFor({timeout: WAIT});
    check(await page.locator('figure.chart svg').count() >= 2, 'charts missing');
    check(await page.locator('figure.top li').count() >= 1, 'top lists empty');
    await axe(page, 'storage');
    await page.getByRole('button', {name: 'Start a GC dry run'}).click();
    await page.locator('section[aria-labelledby="gc-h"] dd', {hasText: /^done$/}).waitFor({timeout: WAIT});
    const panel = await page.locator('section[aria-labelledby="gc-h"] .panel').textContent();
    check(panel.includes('(dry run)'), `GC panel: ${panel}`);
    // A retention dry run lists what the policies would delete, and why.
    await page.getByRole('button', {name: 'Start a retention dry run'}).click();
    const items = page.locator('#retention-items');
    await items.waitFor({timeout: WAIT});
    const rows = await items.locator('tbody tr').allTextContents();
    // The tag, beyond keep_last, and then its manifest, which no tag keeps.
    check(rows.length === 2 && rows[0].includes(args.expired) && rows[0].includes('beyond keep last') &&
      rows[1].includes(args.repo) && rows[1].includes('freed'), `retention would delete: ${JSON.stringify(rows)}`);
    check((await items.locator('caption').textContent()).startsWith('Would delete'), 'not marked a dry run');
    await axe(page, 'storage with runs');
    await shot(page, 'storage');
  },

  // A client certificate signs the browser in: no form, and its changes
  // carry the CSRF token the registry gives the certificate's user.
  async certificate(page) {
    await page.goto(`${base}/ui/repositories`);
    await page.locator('#who', {hasText: `Signed in as ${args.user}`}).waitFor({timeout: WAIT});
    check(await page.locator('#who button').count() === 0, 'a certificate user is offered Sign out');
    await page.locator('#repo-table tbody th a', {hasText: args.repo}).click();
    await page.getByRole('button', {name: `Delete tag ${args.tag}`}).click();
    await page.getByRole('dialog').getByRole('button', {name: 'Delete tag'}).click();
    await page.locator('#repo-status', {hasText: 'was deleted'}).waitFor({timeout: WAIT});
    await axe(page, 'repository (client certificate)');
    // The sign-in page says a certificate already signed this browser in.
    await page.goto(`${base}/ui/sign-in`);
    await page.locator('main', {hasText: args.user}).waitFor({timeout: WAIT});
    await axe(page, 'sign-in (client certificate)');
  },

  // Mirrored prefixes apart, with their hit rate; the list's views.
  async mirrors(page) {
    const names = (want) => page.waitForFunction((n) => {
      const got = [...document.querySelectorAll('#repo-table tbody th a')].map((a) => a.textContent);
      return JSON.stringify(got) === JSON.stringify(n);
    }, want, {timeout: WAIT});
    await page.goto(`${base}/ui/repositories`);
    const row = page.locator('#mirrors tbody tr', {hasText: args.prefix});
    await row.waitFor({timeout: WAIT});
    const text = await row.textContent();
    check(text.includes(`${args.hitRate}%`) && text.includes(args.upstream) && text.includes('up'),
      `the mirror's row says "${text}"`);
    await names([args.hosted, args.mirrored].sort());
    const badges = await page.locator('#repo-table tbody tr', {hasText: args.mirrored}).locator('.badge').count();
    check(badges === 1, `the mirrored repository has ${badges} mirror badges`);
    await axe(page, 'repositories with a mirror');
    await shot(page, 'mirrors');
    await page.getByRole('button', {name: 'Mirrored'}).click();
    await names([args.mirrored]);
    check(new URL(page.url()).searchParams.get('mirrored') === 'true', `the URL is ${page.url()}`);
    await page.getByRole('button', {name: 'Hosted'}).click();
    await names([args.hosted]);
    // The prefix's link lists what is cached under it.
    await page.locator('#mirrors tbody th a', {hasText: args.prefix}).click();
    await page.waitForFunction(() => location.search.includes('mirrored=true'), null, {timeout: WAIT});
    await names([args.mirrored]);
  },

  async status(page) {
    await page.goto(`${base}/ui/status`);
    await page.locator('dl.facts').waitFor({timeout: WAIT});
    const text = await page.locator('dl.facts').textContent();
    check(text.includes(args.version), `status shows: ${text}`);
    const hook = page.locator('section[aria-labelledby="hooks-h"] tbody tr', {hasText: args.hook});
    await hook.waitFor({timeout: WAIT});
    const row = await hook.textContent();
    check(row.includes('failing'), `webhook row: ${row}`);
    await axe(page, 'status');
    await shot(page, 'status');
  },

  // Everything shown comes from the registry as text: markup in labels,
  // annotations and history shows as itself and never runs.
  async xss(page) {
    for (const {url, shows} of args.pages) {
      await page.goto(`${base}${url}`);
      await page.locator('h1').waitFor({timeout: WAIT});
      await page.waitForLoadState('networkidle');
      const body = await page.locator('main').textContent();
      if (shows) {
        const times = body.split(args.marker).length - 1;
        check(times >= shows, `${url}: the payload is shown as text ${times} times, want ${shows}`);
      }
      const ran = await page.evaluate(() => window.__xss === undefined ? 0 : window.__xss);
      check(ran === 0, `${url}: the payload ran`);
      check(await page.locator('main img, main script, main iframe, main svg a, main [onerror], main [onclick]').count() === 0,
        `${url}: the payload became an element`);
      await axe(page, url);
    }
    await shot(page, 'xss');
  },

  // Signing in through the UI, a change with the session's CSRF token, the
  // same change refused without it, another site's form refused, signing out.
  async signin(page) {
    await page.goto(`${base}/ui/repositories`);
    const prompt = page.getByRole('alert').getByRole('link', {name: 'Sign in'});
    await prompt.waitFor({timeout: WAIT});
    check(await page.locator('#who a', {hasText: 'Sign in'}).count() === 1, 'no Sign in link in the header');
    await prompt.click();
    await page.waitForURL(/\/ui\/sign-in\?next=%2Fui%2Frepositories$/);
    await page.locator('#username').waitFor({timeout: WAIT});
    await axe(page, 'sign-in');
    await shot(page, 'sign-in');
    await page.getByLabel('User name').fill(args.user);
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', {name: 'Sign in'}).click();
    await page.locator('#sign-in-status', {hasText: 'wrong'}).waitFor({timeout: WAIT});
    await page.getByLabel('Password').fill(args.password);
    await page.getByRole('button', {name: 'Sign in'}).click();
    await page.waitForURL(/\/ui\/repositories$/);
    await page.locator('#repo-table tbody th a').first().waitFor({timeout: WAIT});
    await page.locator('#who', {hasText: `Signed in as ${args.user}`}).waitFor({timeout: WAIT});
    // The cookie is HttpOnly: the page's script cannot read it.
    check(!(await page.evaluate(() => document.cookie)).includes('ringport_session'), 'the session cookie is readable by script');
    // Into a repository without a reload: its pull commands name the registry.
    await page.locator('#repo-table tbody th a', {hasText: args.repo}).click();
    await page.locator('#tags-table input[readonly]').first().waitFor({timeout: WAIT});
    const pulls = await page.locator('#tags-table input[readonly]').evaluateAll((xs) => xs.map((x) => x.value));
    const registry = args.registry || new URL(base).host;
    check(pulls.includes(`docker pull ${registry}/${args.repo}:${args.keep}`), `pull lines after signing in: ${pulls}`);

    // A delete through the UI carries the CSRF token.
    await page.goto(`${base}/ui/repositories/${args.repo}`);
    await page.getByRole('button', {name: `Delete tag ${args.tag}`}).click();
    await page.getByRole('dialog').getByRole('button', {name: 'Delete tag'}).click();
    await page.locator('#repo-status', {hasText: 'was deleted'}).waitFor({timeout: WAIT});
    // The same request without it, from the page's own script, is refused.
    const bare = await page.evaluate(async (u) => (await fetch(u, {method: 'DELETE'})).status,
      `/ringport/v1/repositories/${args.repo}/-/tags/${args.keep}`);
    check(bare === 403, `a DELETE without the CSRF token got ${bare}`);
    // Another site's page posting a form here: refused (and no cookie sent).
    const evil = await page.context().newPage();
    await evil.setContent(`<form method="post" action="${base}/ringport/v1/gc?dry_run=true"><button>go</button></form>`);
    const [resp] = await Promise.all([evil.waitForResponse((r) => r.url().includes('/ringport/v1/gc')), evil.click('button')]);
    check(resp.status() === 403, `another site's form got ${resp.status()}`);
    await evil.close();

    // Signing out: the header offers Sign in again, and the list asks for it.
    await page.getByRole('button', {name: 'Sign out'}).click();
    await page.waitForURL(/\/ui\/sign-in$/);
    await page.locator('#username').waitFor({timeout: WAIT});
    await page.goto(`${base}/ui/repositories`);
    await page.getByRole('alert').getByRole('link', {name: 'Sign in'}).waitFor({timeout: WAIT});
    // The refused DELETE and the list's 401 are expected console errors.
    const rest = problems.filter((p) => !/status of (401|403)/.test(p));
    problems.splice(0, problems.length, ...rest);
  },

  // Deep links: any /ui/ path loads the app; unknown pages say so.
  async deeplink(page) {
    const r = await page.goto(`${base}/ui/repositories/${args.name}/-/tags/${args.tag}`);
    check(r.status() === 200, `deep link status ${r.status()}`);
    await page.locator('#plat-h, #layers-h').first().waitFor({timeout: WAIT});
    await page.reload();
    await page.locator('#plat-h, #layers-h').first().waitFor({timeout: WAIT});
    await page.goto(`${base}/ui/no/such/page`);
    await page.locator('h1', {hasText: 'Not found'}).waitFor({timeout: WAIT});
    // A name outside the OCI grammar ("a/../b" would reach another
    // repository through the API calls built from it) is no page.
    await page.goto(`${base}/ui/repositories/apps%2F..%2Fdeep`);
    await page.locator('h1', {hasText: 'Not found'}).waitFor({timeout: WAIT});
    await page.goto(`${base}/ui/repositories/no-such-repo`);
    await page.locator('[role=alert]').waitFor({timeout: WAIT});
    // The 404s of the last two pages are expected console errors; nothing else is.
    const rest = problems.filter((p) => !/status of 404/.test(p));
    problems.splice(0, problems.length, ...rest);
  },
};

async function main() {
  const run = scenarios[scenario];
  if (!run) {
    console.error(`no scenario ${scenario}: ${Object.keys(scenarios).join(', ')}`);
    process.exit(2);
  }
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    timeout: 60000,
  });
  let rc = 0;
  try {
    const options = {viewport: {width: 1280, height: 900}};
    if (args.clientCert) {
      // The browser holds a client certificate for the registry (and trusts
      // the test CA's server certificate).
      options.clientCertificates = [{origin: new URL(base).origin, certPath: args.clientCert, keyPath: args.clientKey}];
      options.ignoreHTTPSErrors = true;
    }
    const context = await browser.newContext(options);
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()} (${m.location().url})`); });
    page.on('dialog', (d) => { problems.push(`dialog: ${d.message()}`); d.dismiss().catch(() => {}); });
    await page.exposeBinding('__cspViolation', (_src, v) => problems.push(`CSP violation: ${v}`));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__cspViolation(`${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    await run(page);
    check(problems.length === 0, problems.join('\n'));
    console.log(`${scenario}: ok`);
  } catch (e) {
    console.error(`${scenario}: ${e instanceof Failure ? 'FAILED' : 'ERROR'}: ${e.stack || e}`);
    if (problems.length) console.error(problems.join('\n'));
    rc = 1;
  } finally {
    await browser.close();
  }
  process.exit(rc);
}

main();
