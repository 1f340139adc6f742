// Times the web view in Debian's headless Chromium (playwright-core):
// MODE=pages: the builds page (first 50 of all builds), a search, the next
// page, and the page of BUILD (every step row drawn), each the median of 5
// loads. MODE=watch: keeps the builds page open (it re-reads on every
// change) for SECONDS, then prints how many times it re-read.
'use strict';
const {chromium} = require(process.env.PLAYWRIGHT);
const URL = process.env.WEB_URL;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timed(page, action, ready, arg) {
  const t0 = Date.now();
  await action();
  await page.waitForFunction(ready, arg, {timeout: 30000, polling: 'raf'});
  return Date.now() - t0;
}

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await (await browser.newContext({viewport: {width: 1280, height: 900}})).newPage();
  if (process.env.MODE === 'watch') {
    let reads = 0;
    page.on('request', (r) => { if (r.url().includes('/api/v1/builds?')) reads++; });
    await page.goto(URL + '#/builds');
    await page.waitForSelector('table[aria-label="builds"] tbody tr');
    await new Promise((r) => setTimeout(r, Number(process.env.SECONDS) * 1000));
    console.log(`web view re-read the builds page ${reads} times`);
    await browser.close();
    return;
  }
  const list = [], search = [], next = [], build = [];
  const steps = Number(process.env.STEPS);
  for (let i = 0; i < 5; i++) {
    await page.goto('about:blank');
    list.push(await timed(page, () => page.goto(URL + '#/builds'),
      () => document.querySelectorAll('table[aria-label="builds"] tbody tr[data-build]').length === 50));
    const total = await page.textContent('.pager span');
    if (i === 0) console.log('builds listed: ' + total);
    search.push(await timed(page, async () => {
      await page.fill('#q', 'Dockerfile');
      await page.press('#q', 'Enter');
    }, () => location.hash.includes('q=Dockerfile') &&
      document.querySelectorAll('table[aria-label="builds"] tbody tr[data-build]').length === 50));
    next.push(await timed(page, () => page.click('#next'),
      () => location.hash.includes('offset=50') &&
        document.querySelectorAll('table[aria-label="builds"] tbody tr[data-build]').length === 50));
    await page.goto('about:blank');
    build.push(await timed(page, () => page.goto(URL + '#/builds/' + process.env.BUILD),
      (n) => document.querySelectorAll('tr[data-step]').length >= n, steps));
  }
  console.log(`builds page (first 50 of all): median ${median(list)} ms (${list.join(', ')})`);
  console.log(`search: median ${median(search)} ms`);
  console.log(`next page: median ${median(next)} ms`);
  console.log(`build page with ${steps} steps: median ${median(build)} ms (${build.join(', ')})`);
  await browser.close();
})().catch((e) => { console.error(e); process.exit(1); });
