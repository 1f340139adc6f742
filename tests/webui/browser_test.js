// The web view in Debian's headless Chromium (playwright-core drives it over
// the DevTools protocol). Run by web_view_test.sh, which starts the farm and
// the builds; prints PASS/FAIL lines as the end-to-end scripts do.
'use strict';
const {execSync} = require('child_process');
const {chromium} = require(process.env.PLAYWRIGHT);

const URL = process.env.WEB_URL;
const SHOTS = process.env.SCREENSHOTS;
let failed = 0;
function pass(name) { console.log('PASS ' + name); }
function fail(name, why) { console.log('FAIL ' + name + ': ' + why); failed++; }
function check(name, want, got) {
  if (want === got) pass(name);
  else fail(name, `expected [${want}], got [${got}]`);
}
function checkTrue(name, ok, detail) { ok ? pass(name) : fail(name, detail || 'false'); }

async function signIn(page, token) {
  await page.goto(URL);
  await page.waitForSelector('#login');
  await page.fill('#token', token);
  await page.press('#token', 'Enter');
  await page.waitForSelector('table[aria-label="builds"] tbody tr');
}

async function main() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    // --- team A ---------------------------------------------------------------
    const ctx = await browser.newContext({viewport: {width: 1280, height: 900}});
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

    await page.goto(URL);
    await page.waitForSelector('#login');
    pass('a farm with tenants shows the sign-in form first');
    await page.fill('#token', 'not-a-token');
    await page.press('#token', 'Enter');
    await page.waitForFunction(() => document.getElementById('login-error').textContent !== '');
    checkTrue('a wrong token is refused on the form',
      (await page.textContent('#login-error')).includes('not known'),
      await page.textContent('#login-error'));
    await signIn(page, process.env.TOKEN_A);
    errors.length = 0;  // the refused token's 401 was meant
    check('signed in as team-a', true, (await page.textContent('#who')).includes('team-a'));

    // Builds list.
    const rows = await page.$$eval('table[aria-label="builds"] tbody tr', (trs) =>
      trs.map((tr) => ({id: tr.dataset.build, text: tr.textContent})));
    checkTrue('the builds page lists team A\'s five builds', rows.length === 5,
      JSON.stringify(rows.map((r) => r.id)));
    const failedRow = rows.find((r) => r.id === process.env.FAILED_BUILD);
    checkTrue('the failing build is listed as failed', failedRow && /failed/.test(failedRow.text),
      failedRow && failedRow.text);
    const changedRow = rows.find((r) => r.id === process.env.CHANGED_BUILD);
    checkTrue('... with their image tags', changedRow && changedRow.text.includes('changed:2'),
      changedRow && changedRow.text);
    await page.screenshot({path: SHOTS + '/builds.png', fullPage: true});

    // Search.
    await page.fill('#q', process.env.FAILED_BUILD.slice(0, 10));
    await page.press('#q', 'Enter');
    await page.waitForFunction(() =>
      document.querySelectorAll('table[aria-label="builds"] tbody tr').length === 1);
    pass('searching by id narrows the list to one build');

    // The failed build's page, by following its link.
    await page.click(`a[href="#/builds/${process.env.FAILED_BUILD}"]`);
    await page.waitForSelector('section.failure');
    await page.waitForFunction(() => {
      const t = document.querySelector('pre[data-tail]');
      return t && t.textContent.includes('the last line');
    });
    const failure = await page.textContent('section.failure');
    check('the failure comes first on the build page', 'failure',
      await page.$eval('main > *:nth-child(2)', (e) => e.getAttribute('aria-label')));
    check('... with the exit code', '3', await page.textContent('[data-exit-code]'));
    checkTrue('... the failing instruction', failure.includes('exit 3'), failure);
    checkTrue('... and the last line of its output', failure.includes('the last line before the end'), failure);
    const stages = await page.$$eval('svg.dag g.node', (gs) => gs.map((g) => g.dataset.stage).sort());
    check('the stage graph shows the three stages', 'assets,sdk,stage-2', stages.join(','));
    const edges = await page.$$eval('svg.dag path.edge', (ps) => ps.map((p) => p.dataset.edge).sort());
    check('... and the edges between them', 'assets->stage-2,sdk->stage-2', edges.join(','));
    const lanes = await page.$$eval('svg[aria-label="timeline"] g[data-lane-stage]', (gs) => gs.length);
    check('the timeline draws a bar per stage', 3, lanes);
    const stepLine = await page.textContent('tr[data-step="sdk/1"]');
    checkTrue('the steps table shows each step with its instruction and worker',
      stepLine.includes('RUN echo compiling the sdk') && /worker-\d/.test(stepLine), stepLine);
    // A step's log, opened from the keyboard.
    await page.focus('tr[data-step="sdk/1"] button[data-toggle]');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => {
      const p = [...document.querySelectorAll('pre[data-log]')];
      return p.some((x) => x.textContent.includes('compiling the sdk'));
    });
    pass('a step\'s log opens from the keyboard and shows its output');
    await page.screenshot({path: SHOTS + '/build-failed.png', fullPage: true});

    // The cached rebuild: its steps are marked cached.
    await page.goto(`${URL}#/builds/${process.env.CACHED_BUILD}`);
    await page.waitForSelector('main h3');
    // The scheduler's stage cache answered for whole stages: no worker ran
    // a step.
    const allStages = await page.$$eval('main h3', (t) => t.length);
    const cachedStages = await page.$$eval('h3 .state-cached', (t) => t.length);
    const ran = await page.$$eval('tr.step-done', (t) => t.length);
    const nodes = await page.$$eval('svg.dag g.node.state-cached', (t) => t.length);
    checkTrue('the cached rebuild\'s stages are marked cached, in the list and the graph',
      allStages >= 1 && cachedStages === allStages && nodes === allStages && ran === 0,
      `stages ${allStages}, cached ${cachedStages}, graph ${nodes}, steps run ${ran}`);
    // Its image, opened in the CAS browser.
    await page.click('dd.mono a');
    await page.waitForSelector('#blob ol li');
    const layers = await page.$$eval('#blob ol li', (l) => l.length);
    checkTrue('the image\'s manifest opens in the CAS browser with its layers', layers >= 1,
      String(layers));
    await page.screenshot({path: SHOTS + '/cas.png', fullPage: true});

    // Why the steps of a build after a changed file ran; lines, layers, and
    // a step's entry in the action cache.
    await page.goto(`${URL}#/builds/${process.env.CHANGED_BUILD}`);
    await page.waitForSelector('tr[data-step="stage-0/1"] .miss');
    const miss = (n) => page.$eval(`tr[data-step="stage-0/${n}"] .miss`, (e) => e.dataset.miss);
    check('a COPY that ran says its content changed', 'content', await miss(1));
    check('... and the RUN after it, that an earlier step\'s result did', 'parent', await miss(2));
    check('each step shows its Dockerfile line', '2,3',
      (await page.$$eval('tr[data-step^="stage-0/"] td[data-line]', (t) =>
        t.map((x) => x.textContent))).filter((x) => x === '2' || x === '3').join(','));
    const layer = await page.textContent('tr[data-step="stage-0/1"] td[data-layer]');
    checkTrue('... and the size of the layer it made', /\d/.test(layer), layer);
    check('the build page names its tags', 'changed:2', await page.textContent('dd[data-tags]'));
    await page.screenshot({path: SHOTS + '/build-why-ran.png', fullPage: true});
    await page.click('tr[data-step="stage-0/1"] a[data-cache-entry]');
    await page.waitForSelector('table[data-outputs]');
    const outputs = await page.textContent('table[data-outputs]');
    checkTrue('a step\'s cache entry opens as an ActionResult by its key (action digest)',
      outputs.includes('step.json') && outputs.includes('layer'), outputs);

    // Dark theme: the same page, readable.
    const dark = await browser.newContext({viewport: {width: 1280, height: 900}, colorScheme: 'dark'});
    const darkPage = await dark.newPage();
    await signIn(darkPage, process.env.TOKEN_A);
    await darkPage.goto(`${URL}#/builds/${process.env.FAILED_BUILD}`);
    await darkPage.waitForFunction(() => {
      const t = document.querySelector('pre[data-tail]');
      const logs = [...document.querySelectorAll('pre[data-log]')];
      return t && t.textContent.includes('the last line') &&
        logs.every((p) => !p.textContent.startsWith('loading'));
    });
    const bg = await darkPage.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const fg = await darkPage.evaluate(() => getComputedStyle(document.body).color);
    const lum = (c) => c.match(/\d+/g).slice(0, 3).reduce((a, b) => a + Number(b), 0) / 3;
    checkTrue('the dark theme draws light text on a dark page', lum(bg) < 60 && lum(fg) > 180,
      `${bg} / ${fg}`);
    await darkPage.screenshot({path: SHOTS + '/build-failed-dark.png', fullPage: true});
    await dark.close();

    // Workers and cache.
    await page.click('nav a[data-nav="workers"]');
    await page.waitForSelector('table[aria-label="workers"] tbody tr[data-worker]');
    const workers = await page.$$eval('tr[data-worker]', (t) => t.map((r) => r.dataset.worker).sort());
    check('the workers page names both workers', 'worker-1,worker-2', workers.join(','));
    await page.screenshot({path: SHOTS + '/workers.png', fullPage: true});
    await page.click('nav a[data-nav="cache"]');
    await page.waitForSelector('table[aria-label="hit rate by tenant"] tbody tr');
    const tenants = await page.textContent('table[aria-label="hit rate by tenant"] tbody');
    checkTrue('the cache page shows team A\'s hit rate', tenants.includes('team-a'), tenants);
    const most = await page.textContent('table[aria-label="steps that miss most"]');
    checkTrue('... and the steps that ran', most.includes('RUN echo compiling the sdk'), most);
    await page.screenshot({path: SHOTS + '/cache.png', fullPage: true});

    // Live: a build submitted while the builds page is open appears, and its
    // page follows it to the end, without a reload.
    await page.click('nav a[data-nav="builds"]');
    await page.waitForSelector('table[aria-label="builds"] tbody tr');
    await page.evaluate(() => { window.notReloaded = true; });
    execSync(process.env.START_SLOW);
    await page.waitForFunction(() =>
      document.querySelectorAll('table[aria-label="builds"] tbody tr').length === 6 &&
      document.querySelector('table[aria-label="builds"] tbody tr').textContent.includes('running'),
    null, {timeout: 15000});
    const newId = await page.$eval('table[aria-label="builds"] tbody tr', (tr) => tr.dataset.build);
    check('a new build appears on the open page, running, without a reload', true,
      await page.evaluate(() => window.notReloaded === true));
    await page.click(`a[href="#/builds/${newId}"]`);
    await page.waitForSelector('h1 .state-running');
    await page.evaluate(() => { window.notReloaded = true; });
    await page.screenshot({path: SHOTS + '/build-running.png', fullPage: true});
    await page.waitForSelector('h1 .state-succeeded', {timeout: 20000});
    check('its page follows it to success without a reload', true,
      await page.evaluate(() => window.notReloaded === true));

    // Cancel from the page.
    execSync(process.env.START_LONG);
    await page.click('nav a[data-nav="builds"]');
    await page.waitForFunction(() =>
      document.querySelectorAll('table[aria-label="builds"] tbody tr').length === 7, null,
    {timeout: 15000});
    const longId = await page.$eval('table[aria-label="builds"] tbody tr', (tr) => tr.dataset.build);
    await page.click(`a[href="#/builds/${longId}"]`);
    await page.waitForSelector('#cancel');
    await page.waitForFunction(() => document.body.textContent.includes('RUN echo waiting'), null,
      {timeout: 15000});
    await page.click('#cancel');
    await page.waitForSelector('h1 .state-cancelled', {timeout: 15000});
    pass('the cancel button cancels a running build');

    checkTrue('no script errors on team A\'s pages', errors.length === 0, errors.join(' | '));

    // --- team B ---------------------------------------------------------------
    const ctxB = await browser.newContext();
    const pageB = await ctxB.newPage();
    await pageB.goto(URL);
    await pageB.waitForSelector('#login');
    await pageB.fill('#token', process.env.TOKEN_B);
    await pageB.press('#token', 'Enter');
    await pageB.waitForSelector('table[aria-label="builds"] tbody tr');
    check('team B sees none of team A\'s builds', 'No builds.',
      (await pageB.textContent('table[aria-label="builds"] tbody')).trim());
    await pageB.goto(`${URL}#/builds/${process.env.FAILED_BUILD}`);
    await pageB.waitForSelector('p.error');
    checkTrue('team B opening team A\'s build is told there is no such build',
      (await pageB.textContent('p.error')).includes('no build'), await pageB.textContent('p.error'));
    const status = async (p, path, opts) => p.evaluate(async ([path, opts]) =>
      (await fetch(path, opts)).status, [path, opts || {}]);
    check('team B gets 404 for team A\'s build from the API', 404,
      await status(pageB, `/api/v1/builds/${process.env.FAILED_BUILD}`));
    check('... 403 for team A\'s instance in the CAS browser', 403,
      await status(pageB, `/api/v1/blobs/${'0'.repeat(64)}/0?instance=team-a`));
    check('... 404 cancelling team A\'s build', 404,
      await status(pageB, `/api/v1/builds/${process.env.FAILED_BUILD}/cancel`,
        {method: 'POST', headers: {'X-Stagefarm': '1'}}));
    const anon = await browser.newContext();
    const pageAnon = await anon.newPage();
    await pageAnon.goto(URL + 'index.html');
    check('without a session the API answers 401', 401, await status(pageAnon, '/api/v1/builds'));
    check('a POST without the X-Stagefarm header is refused (403)', 403,
      await status(pageAnon, `/api/v1/builds/${process.env.FAILED_BUILD}/cancel`, {method: 'POST'}));
    check('... signing in too (another site\'s form cannot sign a browser in)', 403,
      await status(pageAnon, '/api/v1/session', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({token: process.env.TOKEN_B})}));
    const leaked = await pageB.evaluate(async () => (await fetch('/api/v1/workers')).text());
    checkTrue('team B\'s workers page shows no build of team A',
      !leaked.includes(process.env.FAILED_BUILD), leaked.slice(0, 300));
  } finally {
    await browser.close();
  }
  if (process.env.FIREFOX) await inFirefox();
}

// The same pages in Debian's Firefox ESR, which playwright-core drives over
// WebDriver BiDi (its "moz-firefox" channel with the system binary).
async function inFirefox() {
  const {firefox} = require(process.env.PLAYWRIGHT);
  const browser = await firefox.launch({channel: 'moz-firefox',
    executablePath: process.env.FIREFOX, headless: true});
  try {
    const page = await browser.newPage({viewport: {width: 1280, height: 900}});
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await signIn(page, process.env.TOKEN_A);
    const ids = await page.$$eval('table[aria-label="builds"] tbody tr', (trs) =>
      trs.map((tr) => tr.dataset.build));
    checkTrue('Firefox: the builds page lists team A\'s builds',
      ids.includes(process.env.FAILED_BUILD) && ids.includes(process.env.CHANGED_BUILD), ids.join(','));
    await page.click(`a[href="#/builds/${process.env.FAILED_BUILD}"]`);
    await page.waitForFunction(() => {
      const t = document.querySelector('pre[data-tail]');
      return t && t.textContent.includes('the last line');
    });
    check('Firefox: the failed build\'s page shows its exit code first', '3',
      await page.textContent('section.failure [data-exit-code]'));
    const edges = await page.$$eval('svg.dag path.edge', (ps) => ps.map((p) => p.dataset.edge).sort());
    check('Firefox: ... its stage graph', 'assets->stage-2,sdk->stage-2', edges.join(','));
    check('Firefox: ... and its timeline', 3,
      await page.$$eval('svg[aria-label="timeline"] g[data-lane-stage]', (gs) => gs.length));
    await page.goto(`${URL}#/builds/${process.env.CHANGED_BUILD}`);
    await page.waitForSelector('tr[data-step="stage-0/1"] .miss');
    check('Firefox: why a step ran', 'content',
      await page.$eval('tr[data-step="stage-0/1"] .miss', (e) => e.dataset.miss));
    await page.click('nav a[data-nav="workers"]');
    await page.waitForSelector('tr[data-worker]');
    await page.click('nav a[data-nav="cache"]');
    await page.waitForSelector('table[aria-label="hit rate by tenant"] tbody tr');
    pass('Firefox: the workers and cache pages load');
    checkTrue('Firefox: no script errors', errors.length === 0, errors.join(' | '));
    // Last: a screenshot in Firefox adds a <style> of Playwright's, which
    // the page's Content-Security-Policy refuses (an error of the tool's).
    await page.goto(`${URL}#/builds/${process.env.FAILED_BUILD}`);
    await page.waitForSelector('section.failure');
    await page.screenshot({path: SHOTS + '/firefox-build-failed.png', fullPage: true});
  } finally {
    await browser.close();
  }
}

main().then(() => process.exit(failed ? 1 : 0), (e) => {
  fail('browser test', e.stack || String(e));
  process.exit(1);
});
