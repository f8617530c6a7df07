// SPDX-License-Identifier: Apache-2.0
// bench/ui.py's browser side: loads a UI page in Debian's Chromium, `rounds`
// times cold (a new browser context: empty cache) and as many warm (the same
// context again: the files cached, the page revalidated), and prints JSON: each load's time
// from navigation start to the app's `rp-rendered` mark (the page drawn, its
// data fetched, the search box taking input), and the bytes a cold load
// moved. Uses the playwright-core that tests/browser installs.
//   node bench/ui_load.mjs <url> <rounds>
import {createRequire} from 'node:module';

const require = createRequire(new URL('../tests/browser/package.json', import.meta.url));
const {chromium} = require('playwright-core');
const [url, roundsText] = process.argv.slice(2);
const rounds = Number(roundsText || 20);

async function load(page) {
  await page.goto(url, {waitUntil: 'load'});
  await page.waitForFunction(() => performance.getEntriesByName('rp-rendered').length > 0,
    null, {timeout: 30000});
  return page.evaluate(() => {
    const mark = performance.getEntriesByName('rp-rendered')[0].startTime;
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource');
    const bytes = [nav, ...res].reduce((a, e) => a + (e.transferSize || 0), 0);
    const rows = document.querySelectorAll('#repo-table tbody tr').length;
    const input = document.querySelector('#repo-search');
    return {ms: mark, bytes, requests: res.length + 1, rows,
      input: !!input && !input.disabled};
  });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const out = {cold: [], warm: [], bytes: 0, requests: 0, rows: 0};
try {
  for (let i = 0; i < rounds + 1; i++) {
    const ctx = await browser.newContext({viewport: {width: 1280, height: 900}});
    const page = await ctx.newPage();
    const cold = await load(page);
    const warm = await load(page);
    await ctx.close();
    if (!cold.input || cold.rows === 0) throw new Error(`the list did not render: ${JSON.stringify(cold)}`);
    if (i === 0) continue; // the browser's own first start
    out.cold.push(cold.ms);
    out.warm.push(warm.ms);
    out.bytes = cold.bytes;
    out.requests = cold.requests;
    out.rows = cold.rows;
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
