// Checks pages in the system Chromium: axe-core's findings, and whether the page scrolls
// sideways at the window's width. Usage: node check.js WIDTH URL... (NODE_PATH pointing at
// the node_modules .ci/deps installs). Prints one JSON object per URL, one per line:
// {"url", "violations": [{"id", "impact", "help", "nodes": [html...]}], "scrollWidth", "innerWidth"}
'use strict';
const puppeteer = require('puppeteer-core');
const axePath = require.resolve('axe-core/axe.min.js');

(async () => {
  const [width, ...urls] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  try {
    for (const url of urls) {
      const page = await browser.newPage();
      // The pages forbid scripts (Content-Security-Policy): axe is injected past it.
      await page.setBypassCSP(true);
      await page.setViewport({ width: Number(width) || 1280, height: 900 });
      const resp = await page.goto(url, { waitUntil: 'load' });
      if (!resp || resp.status() !== 200) {
        throw new Error(`${url}: status ${resp ? resp.status() : 'none'}`);
      }
      await page.addScriptTag({ path: axePath });
      const result = await page.evaluate(async () => {
        const r = await window.axe.run(document, { resultTypes: ['violations'] });
        return {
          violations: r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.html) })),
          scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth,
        };
      });
      process.stdout.write(JSON.stringify({ url, ...result }) + '\n');
      await page.close();
    }
  } finally {
    await browser.close();
  }
})().catch(err => { console.error(err); process.exit(1); });
