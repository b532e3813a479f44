// The dashboard in a real browser (ctest privileged/browser, root): starts the DSTM namespace lab
// with dstm-web (tests/lab, docs/lab.md), drives Debian's Chromium with playwright-core through
// the pages an operator uses, and saves a screenshot of every page as an artifact.
//
//   node dashboard_test.mjs --lab BUILD/tests/lab/dstm-lab --artifacts DIR [--update-docs]
//   node dashboard_test.mjs --info FILE --artifacts DIR      (a lab already running with --info)
//
// Bounded: one overall deadline (--timeout, seconds), every wait has its own, and the lab is
// stopped by its PID however the test ends. --update-docs copies the screenshots to
// docs/screenshots/ (docs/dashboard.md shows them).
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const kChromium = '/usr/bin/chromium';
const kChromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
                       '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const kConfirmWindow = 20;  // s: the lab's web.confirm_timeout, long enough to see and click
const kLabStart = 180e3;    // namespaces, five daemons, the dashboard
const kLabStop = 60e3;
const kWait = 20e3;         // the default deadline of every wait in the page

// --- Arguments.
const args = {lab: null, info: null, artifacts: path.join(process.cwd(), 'browser-artifacts'),
              updateDocs: false, timeout: 540};
for (let i = 2; i < process.argv.length; ++i) {
  const a = process.argv[i];
  const value = () => {
    if (i + 1 >= process.argv.length) usage(`${a} needs a value`);
    return process.argv[++i];
  };
  if (a === '--lab') args.lab = value();
  else if (a === '--info') args.info = value();
  else if (a === '--artifacts') args.artifacts = value();
  else if (a === '--update-docs') args.updateDocs = true;
  else if (a === '--timeout') args.timeout = Number(value());
  else usage(`unknown argument ${a}`);
}
if (!args.lab === !args.info) usage('give either --lab (start a lab) or --info (use a running one)');

function usage(message) {
  console.error(`dashboard_test: ${message}\n` +
    'usage: node dashboard_test.mjs (--lab DSTM_LAB | --info LAB_INFO_JSON) [--artifacts DIR] [--update-docs] [--timeout S]');
  process.exit(64);
}

// playwright-core is the one npm package here (package-lock.json); scripts/setup.sh installs it.
let chromium;
try {
  ({chromium} = await import('playwright-core'));
} catch (e) {
  console.error(`dashboard_test: playwright-core is not installed (${e.code || e.message}): run scripts/setup.sh, ` +
                'or npm ci in tests/browser');
  process.exit(1);
}

const log = (...m) => console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...m);
fs.mkdirSync(args.artifacts, {recursive: true});
for (const f of fs.readdirSync(args.artifacts)) {
  if (f.endsWith('.png') || f.endsWith('.log') || f.endsWith('.json')) fs.rmSync(path.join(args.artifacts, f));
}
fs.rmSync(path.join(args.artifacts, 'lab-logs'), {recursive: true, force: true});

// --- The lab, stopped by PID whatever happens.
let lab = null;  // {process, exited: Promise}
let labInfo = null;

// The daemons' logs live in the lab's work dir, which goes with the lab: keep a copy.
function keepLabLogs() {
  const dir = labInfo && labInfo.work_dir;
  if (!dir || !fs.existsSync(dir)) return;
  const to = path.join(args.artifacts, 'lab-logs');
  fs.mkdirSync(to, {recursive: true});
  for (const f of fs.readdirSync(dir)) {
    if (f.endsWith('.log')) fs.copyFileSync(path.join(dir, f), path.join(to, f));
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

function withDeadline(promise, ms, what) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${Math.round(ms / 1000)} s`)), ms);
  })]).finally(() => clearTimeout(timer));
}

async function startLab() {
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    throw new Error('the lab needs root (network namespaces, TUN devices): run as root');
  // Ports picked free now; the lab's dashboard binds them a moment later (the lab's own
  // defaults, 8443/8080, may be taken by a lab someone runs by hand).
  const httpsPort = await freePort();
  let httpPort = await freePort();
  while (httpPort === httpsPort) httpPort = await freePort();
  const infoFile = path.join(args.artifacts, 'lab-info.json');
  const out = fs.openSync(path.join(args.artifacts, 'dstm-lab.log'), 'w');
  const argv = ['--web-port', String(httpsPort), '--web-http-port', String(httpPort),
                '--confirm-timeout', String(kConfirmWindow), '--info', infoFile, '--ready-fd', '3'];
  log(`starting ${args.lab} ${argv.join(' ')}`);
  const child = spawn(args.lab, argv, {stdio: ['ignore', out, out, 'pipe']});
  fs.closeSync(out);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({code, signal})));
  lab = {process: child, exited};
  let ready = '';
  await withDeadline(new Promise((resolve, reject) => {
    child.stdio[3].on('data', (d) => {
      ready += d.toString();
      if (ready.includes('READY')) resolve();
    });
    exited.then(({code, signal}) => reject(new Error(`dstm-lab exited (code ${code}, signal ${signal}) before READY; ` +
                                                     `see ${path.join(args.artifacts, 'dstm-lab.log')}`)));
  }), kLabStart, 'dstm-lab READY');
  return JSON.parse(fs.readFileSync(infoFile, 'utf8'));
}

async function stopLab() {
  if (!lab) return;
  const {process: child, exited} = lab;
  lab = null;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const pid = child.pid;
  if (!(pid > 0)) return;
  log(`stopping dstm-lab (pid ${pid})`);
  // SIGTERM: the lab stops its daemons in order and removes its namespaces.
  process.kill(pid, 'SIGTERM');
  try {
    await withDeadline(exited, kLabStop, 'dstm-lab stop');
  } catch {
    log(`dstm-lab (pid ${pid}) did not stop: SIGKILL`);
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone meanwhile */ }
    await withDeadline(exited, 10e3, 'dstm-lab after SIGKILL').catch(() => {});
  }
}

// --- Steps: each is named, timed and counted; the first failure ends the run (later steps
// build on the earlier ones), with a screenshot of what the page showed.
const results = [];
let currentPage = null;
const shots = [];

async function step(name, fn) {
  const t0 = Date.now();
  log(`step: ${name}`);
  try {
    await fn();
    results.push({name, ok: true, ms: Date.now() - t0});
    log(`  ok (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({name, ok: false, ms: Date.now() - t0, error: e.message});
    log(`  FAILED: ${e.stack || e.message}`);
    if (currentPage) {
      const file = path.join(args.artifacts, `FAILED-${name.replace(/[^a-z0-9]+/gi, '-')}.png`);
      await currentPage.screenshot({path: file, fullPage: true, timeout: 10e3}).catch(() => {});
      log(`  screenshot of the failure: ${file}`);
    }
    throw e;
  }
}

async function shot(page, name, {fullPage = false} = {}) {
  const file = path.join(args.artifacts, `${name}.png`);
  // Toasts of earlier steps would cover part of the page.
  await page.evaluate(() => document.querySelectorAll('[data-test=toast]').forEach((t) => t.remove()));
  await page.screenshot({path: file, fullPage, timeout: 15e3, animations: 'disabled'});
  shots.push(file);
}

const check = (cond, message) => {
  if (!cond) throw new Error(message);
};

// fetch() from inside the page: the session cookie goes with it, as for the UI itself.
async function apiGet(page, url) {
  return page.evaluate(async (u) => {
    const r = await fetch(u, {headers: {Accept: 'application/json'}});
    return {status: r.status, body: await r.json().catch(() => null)};
  }, url);
}

// Waits until fn() (run in the test, not the page) returns true, polling, bounded.
async function until(what, fn, ms = kWait) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last === true) return;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not within ${Math.round(ms / 1000)} s (last: ${JSON.stringify(last)})`);
}

// --- The run.
async function run() {
  const info = args.lab ? await startLab() : JSON.parse(fs.readFileSync(args.info, 'utf8'));
  labInfo = info;
  const url = info.web_url;
  const user = info.web_user || 'admin';
  const password = info.web_password;
  const client1 = {ipv4: info.client1_ipv4, ipv6: info.client1_ipv6};
  const client2 = {ipv4: info.client2_ipv4};
  check(url && password, 'the lab info has no web_url/web_password (a dstm-lab with the dashboard is needed)');
  check(client1.ipv4 && client1.ipv4 !== '-', 'the lab info has no lease of client 1');
  log(`dashboard ${url}, client 1 ${client1.ipv4} / ${client1.ipv6}`);
  // A second account, made through the Users page; the name differs per run so that a reused
  // lab (--info) takes it too.
  const viewer = {name: `viewer${Date.now() % 100000}`, password: 'viewer-password-1'};

  const browser = await withDeadline(chromium.launch({executablePath: kChromium, args: kChromiumArgs, headless: true,
                                                      timeout: 60e3}), 70e3, 'Chromium start');
  const consoleProblems = [];
  const consoleLog = fs.createWriteStream(path.join(args.artifacts, 'browser-console.log'));
  const watch = (page, label) => {
    page.on('console', (m) => {
      consoleLog.write(`${label} ${m.type()}: ${m.text()}\n`);
      // A 401 is how the UI learns there is no session yet (and the wrong-password step); the
      // viewer's 403 is the refusal the viewer step asks for.
      const expected = /status of 401/.test(m.text()) || (label === 'viewer' && /status of 403/.test(m.text()));
      if (m.type() === 'error' && !expected) consoleProblems.push(`${label}: ${m.text()}`);
    });
    page.on('pageerror', (e) => {
      consoleLog.write(`${label} pageerror: ${e.message}\n`);
      consoleProblems.push(`${label}: uncaught ${e.message}`);
    });
  };

  try {
    // ---------------- Desktop.
    const desktop = await browser.newContext({viewport: {width: 1440, height: 960}, ignoreHTTPSErrors: true,
                                              colorScheme: 'light', locale: 'en-US'});
    const page = await desktop.newPage();
    currentPage = page;
    page.setDefaultTimeout(kWait);
    page.setDefaultNavigationTimeout(30e3);
    watch(page, 'desktop');

    await step('login page', async () => {
      const r = await page.goto(url);
      check(r && r.ok(), `GET ${url}: HTTP ${r && r.status()}`);
      const csp = r.headers()['content-security-policy'] || '';
      check(csp.includes("script-src 'self'"), `the page has no strict CSP: "${csp}"`);
      await page.locator('[data-test=login-view]').waitFor({state: 'visible'});
      await shot(page, 'login');
    });

    await step('a wrong password is refused with a message', async () => {
      await page.fill('[data-test=login-user]', user);
      await page.fill('[data-test=login-password]', 'not-the-password');
      await page.click('[data-test=login-submit]');
      await page.locator('[data-test=login-error]').waitFor({state: 'visible'});
      check(await page.locator('[data-test=app-view]').isHidden(), 'the app opened with a wrong password');
    });

    await step('log in', async () => {
      await page.fill('[data-test=login-password]', password);
      await page.click('[data-test=login-submit]');
      await page.locator('[data-test=app-view]').waitFor({state: 'visible'});
      const who = await page.locator('[data-test=top-user]').textContent();
      check(who.includes(user), `the header shows "${who}"`);
      await page.locator('[data-test=live-indicator][data-state=live]').waitFor({state: 'attached'});
    });

    await step('overview: daemons, pool and the live traffic graph moving', async () => {
      await page.locator('[data-test=daemon-row]').nth(2).waitFor({state: 'visible'});
      await until('dstm-server, tep-1 and tep-2 show up', async () => {
        const rows = await page.locator('[data-test=daemon-row]').evaluateAll((r) =>
          r.map((x) => `${x.dataset.daemon}=${x.querySelector('.daemon-state').textContent.trim()}`));
        return ['dstm-server', 'tep-1', 'tep-2'].every((n) => rows.includes(`${n}=up`)) || rows;
      });
      const pool = await page.locator('[data-test=tile-pool-value]').textContent();
      check(/^2 \/ \d+/.test(pool.trim()), `the pool tile shows "${pool}" (two leases expected)`);
      // The clients ping the host every second: the chart's total must get non-zero points, and
      // its last point must move on with time.
      const chartState = () => page.evaluate(() => {
        const canvas = document.querySelector('[data-test=traffic-canvas]');
        const chart = window.Chart && canvas && window.Chart.getChart(canvas);
        if (!chart) return null;
        const total = chart.data.datasets.find((d) => d.label === 'Total in');
        return {labels: chart.data.labels.length, last: chart.data.labels[chart.data.labels.length - 1],
                datasets: chart.data.datasets.map((d) => d.label),
                nonzero: total ? total.data.filter((v) => v > 0).length : 0};
      });
      await until('traffic chart has moving, non-zero data', async () => {
        const s = await chartState();
        return s !== null && s.labels >= 4 && s.nonzero >= 2 || s;
      }, 45e3);
      const first = await chartState();
      await until('traffic chart advances', async () => {
        const s = await chartState();
        return (s.labels > first.labels || s.last !== first.last) && s.labels >= 10 || s;
      }, 30e3);
      const s = await chartState();
      for (const label of ['Total in', 'Total out', 'tep-1 in', 'tep-2 in'])
        check(s.datasets.includes(label), `the chart has no "${label}" line (has ${s.datasets.join(', ')})`);
      await shot(page, 'overview', {fullPage: true});
    });

    await step("leases: client 1's lease in the table", async () => {
      await page.click('[data-test=nav-leases]');
      await page.locator(`[data-test=lease-row][data-ipv4="${client1.ipv4}"]`).waitFor({state: 'visible'});
      const ipv6 = await page.locator(`[data-test=lease-row][data-ipv4="${client1.ipv4}"] [data-test=lease-ipv6]`).textContent();
      check(ipv6.trim() === client1.ipv6, `client 1's lease shows ${ipv6}`);
      await shot(page, 'leases');
    });

    await step('leases: server-side search finds it', async () => {
      await page.fill('[data-test=leases-search]', client1.ipv6);
      await until('only client 1 left in the table', async () => {
        const rows = await page.locator('[data-test=lease-row]').evaluateAll((r) => r.map((x) => x.dataset.ipv4));
        return (rows.length === 1 && rows[0] === client1.ipv4) || rows;
      });
      check(/q=/.test(await page.evaluate(() => location.hash)), 'the search is not in the address');
      await page.fill('[data-test=leases-search]', client1.ipv4);
      await until('search by IPv4', async () => {
        const rows = await page.locator('[data-test=lease-row]').evaluateAll((r) => r.map((x) => x.dataset.ipv4));
        return (rows.includes(client1.ipv4) && !rows.includes(client2.ipv4)) || rows;
      });
      await shot(page, 'leases-search');
      await page.click('[data-test=leases-reset]');
    });

    await step("leases: extend client 1's lease by an hour", async () => {
      const row = page.locator(`[data-test=lease-row][data-ipv4="${client1.ipv4}"]`);
      await row.locator('[data-test=lease-extend]').click();
      await page.locator('[data-test=extend-dialog]').waitFor({state: 'visible'});
      await page.fill('[data-test=extend-seconds]', '3600');
      await page.click('[data-test=extend-submit]');
      await page.locator('[data-test=toast][data-kind=ok]').first().waitFor({state: 'visible'});
      // The client renews to the configured lifetime later on; right now the hour holds.
      await until('the lease runs for about an hour', async () => {
        const l = await apiGet(page, `/api/leases/${client1.ipv4}`);
        const remaining = l.body?.remaining ?? l.body?.lease?.remaining;
        return remaining > 1800 || l;
      });
    });

    await step('TEPs: both cards with their state', async () => {
      await page.click('[data-test=nav-teps]');
      await page.locator('[data-test=tep-card][data-tep="tep-2"]').waitFor({state: 'visible'});
      check(await page.locator('[data-test=tep-card]').count() === 2, 'not two TEP cards');
      for (const name of ['tep-1', 'tep-2']) {
        const state = await page.locator(`[data-test=tep-card][data-tep="${name}"] [data-test=tep-daemon-state]`).textContent();
        check(state.includes('up'), `${name} shows "${state}"`);
      }
      // Client 1 leaves through tep-1 and its replies come back through tep-2 (docs/lab.md).
      await page.locator('[data-test=tep-card][data-tep="tep-2"] [data-test=binding-row]').first().waitFor({state: 'visible'});
      await shot(page, 'teps', {fullPage: true});
    });

    const lifetime = '[data-test=config-form] input[data-pointer="/dstm_server/lease/lifetime"]';
    // The lab starts with 60 s; a lab reused through --info may have another value by now.
    let original;
    let confirmed;
    let dropped;
    await step('config: an invalid value shows its error at the field', async () => {
      await page.click('[data-test=nav-config]');
      await page.locator(lifetime).waitFor({state: 'visible'});
      original = Number(await page.inputValue(lifetime));
      check(Number.isInteger(original) && original >= 2, `lease lifetime shows "${original}"`);
      confirmed = original + 30;
      dropped = confirmed + 30;
      await shot(page, 'config');
      await page.fill(lifetime, '1');
      await page.click('[data-test=config-check]');
      const error = page.locator('[data-leaf="/dstm_server/lease/lifetime"] [data-test=field-error]');
      await error.waitFor({state: 'visible'});
      check(await page.getAttribute(lifetime, 'aria-invalid') === 'true', 'the field is not marked invalid');
      check(await page.getAttribute('[data-test=config-check-result]', 'data-valid') === 'false', 'the check said valid');
      log(`  error at the field: ${(await error.textContent()).trim()}`);
      await page.locator(lifetime).scrollIntoViewIfNeeded();
      await shot(page, 'config-error');
    });

    await step('config: review the change, apply it and confirm it', async () => {
      await page.fill(lifetime, String(confirmed));
      await page.click('[data-test=config-diff]');
      const change = page.locator('[data-test=diff-dialog] [data-test=diff-row][data-pointer="/dstm_server/lease/lifetime"]');
      await change.waitFor({state: 'visible'});
      check(await page.locator('[data-test=diff-dialog] [data-test=diff-row]').count() === 1, 'the diff has more than one change');
      check((await change.locator('.diff-new').textContent()).trim() === String(confirmed), 'the diff shows another new value');
      await page.click('[data-test=dialog-close]');
      await page.locator('[data-test=diff-dialog]').waitFor({state: 'hidden'});
      await page.click('[data-test=config-apply]');
      await page.locator('[data-test=apply-dialog]').waitFor({state: 'visible'});
      await page.fill('[data-test=apply-comment]', `browser test: lease lifetime ${confirmed} s`);
      await page.click('[data-test=apply-submit]');
      // The apply waits (bounded, 20 s) for each changed daemon to come back.
      await page.locator('[data-test=apply-result]').waitFor({state: 'visible', timeout: 60e3});
      await page.locator('[data-test=pending-banner]').waitFor({state: 'visible'});
      const reloaded = await page.locator('[data-test=apply-reloaded][data-name="dstm-server"]').textContent();
      check(reloaded.includes('reloaded'), `dstm-server: "${reloaded}"`);
      await page.evaluate(() => window.scrollTo(0, 0));
      await shot(page, 'config-pending');
      await page.click('[data-test=pending-confirm]');
      await page.locator('[data-test=pending-banner]').waitFor({state: 'hidden'});
      await until(`the running config has lifetime ${confirmed} and nothing pending`, async () => {
        const c = await apiGet(page, '/api/config');
        return (c.status === 200 && c.body.pending === null && c.body.document.dstm_server.lease.lifetime === confirmed) ||
               c.body;
      });
      await until(`dstm-server runs with lifetime ${confirmed}`, async () => {
        const s = await apiGet(page, '/api/status');
        return s.body?.lease_lifetime === confirmed || s.body?.lease_lifetime;
      });
      await until('the form shows the confirmed value', async () => (await page.inputValue(lifetime)) === String(confirmed));
    });

    await step('config: an unconfirmed apply rolls back by itself', async () => {
      await page.fill(lifetime, String(dropped));
      await page.click('[data-test=config-apply]');
      await page.locator('[data-test=apply-dialog]').waitFor({state: 'visible'});
      await page.fill('[data-test=apply-comment]', 'browser test: not confirmed');
      await page.click('[data-test=apply-submit]');
      await page.locator('[data-test=pending-banner]').waitFor({state: 'visible', timeout: 60e3});
      await until(`dstm-server runs with lifetime ${dropped} during the window`, async () => {
        const s = await apiGet(page, '/api/status');
        return s.body?.lease_lifetime === dropped || s.body?.lease_lifetime;
      });
      const left = Number(await page.getAttribute('[data-test=pending-remaining]', 'data-seconds'));
      check(left > 0 && left <= kConfirmWindow, `the countdown shows ${left} s`);
      // Nobody confirms: the window runs out and the previous document comes back.
      await page.locator('[data-test=pending-banner]').waitFor({state: 'hidden', timeout: (kConfirmWindow + 45) * 1e3});
      await until(`the running config is back at ${confirmed}`, async () => {
        const c = await apiGet(page, '/api/config');
        return (c.body?.pending === null && c.body?.document?.dstm_server?.lease?.lifetime === confirmed) ||
               c.body?.document?.dstm_server?.lease;
      }, 30e3);
      await until(`dstm-server runs with lifetime ${confirmed} again`, async () => {
        const s = await apiGet(page, '/api/status');
        return s.body?.lease_lifetime === confirmed || s.body?.lease_lifetime;
      }, 30e3);
      await until('the form shows the rolled back value', async () => (await page.inputValue(lifetime)) === String(confirmed));
    });

    await step('config: history lists the confirmed and the rolled back revision', async () => {
      await page.click('[data-test=config-tab-history]');
      await page.locator('[data-test=revision-row]').first().waitFor({state: 'visible'});
      const states = await page.locator('[data-test=revision-row]').evaluateAll((r) => r.map((x) => x.dataset.state));
      check(states.includes('confirmed'), `no confirmed revision (${states.join(', ')})`);
      check(states.includes('rolled_back'), `no rolled back revision (${states.join(', ')})`);
      await shot(page, 'config-history');
      await page.click('[data-test=config-tab-form]');
    });

    await step('logs: lines of the daemons', async () => {
      await page.click('[data-test=nav-logs]');
      await page.locator('[data-test=log-row]').first().waitFor({state: 'visible'});
      const daemons = await page.locator('[data-test=log-row]').evaluateAll((r) => [...new Set(r.map((x) => x.dataset.daemon))]);
      check(daemons.includes('dstm-server'), `no dstm-server lines (daemons: ${daemons.join(', ')})`);
      const href = await page.getAttribute('[data-test=logs-download]', 'href');
      check(href && href.startsWith('/api/logs/download'), `download link ${href}`);
      await shot(page, 'logs');
    });

    await step('firmware: version and build', async () => {
      await page.click('[data-test=nav-firmware]');
      await page.locator('[data-test=fw-version]').waitFor({state: 'visible'});
      check((await page.locator('[data-test=fw-version]').textContent()).trim().length > 0, 'no version');
      await shot(page, 'firmware');
    });

    await step('users: the admin account and the certificate', async () => {
      await page.click('[data-test=nav-users]');
      await page.locator(`[data-test=user-row][data-user="${user}"]`).waitFor({state: 'visible'});
      await page.locator('[data-test=tls-kind]').waitFor({state: 'visible'});
      await shot(page, 'users', {fullPage: true});
    });

    await step('users: add a viewer', async () => {
      await page.fill('[data-test=user-new-name]', viewer.name);
      await page.fill('[data-test=user-new-password]', viewer.password);
      await page.selectOption('[data-test=user-new-role]', 'viewer');
      await page.click('[data-test=user-add]');
      await page.locator(`[data-test=user-row][data-user="${viewer.name}"]`).waitFor({state: 'visible'});
    });

    await step('log out', async () => {
      await page.click('[data-test=logout]');
      await page.locator('[data-test=login-view]').waitFor({state: 'visible'});
      const s = await apiGet(page, '/api/session');
      check(s.status === 401, `after logout /api/session is ${s.status}`);
    });
    await desktop.close();

    // ---------------- Phone-sized.
    const phone = await browser.newContext({viewport: {width: 390, height: 844}, deviceScaleFactor: 2, isMobile: true,
                                            hasTouch: true, ignoreHTTPSErrors: true, colorScheme: 'light', locale: 'en-US'});
    const mobile = await phone.newPage();
    currentPage = mobile;
    mobile.setDefaultTimeout(kWait);
    mobile.setDefaultNavigationTimeout(30e3);
    watch(mobile, 'phone');

    await step('phone: overview with the menu collapsed', async () => {
      await mobile.goto(url);
      await mobile.fill('[data-test=login-user]', user);
      await mobile.fill('[data-test=login-password]', password);
      await mobile.click('[data-test=login-submit]');
      await mobile.locator('[data-test=app-view]').waitFor({state: 'visible'});
      check(await mobile.locator('[data-test=nav-leases]').isHidden(), 'the navigation is not collapsed on a phone');
      await until('the phone chart has points', () => mobile.evaluate(() =>
        Number(document.querySelector('[data-test=traffic-chart]')?.dataset.samples || 0) >= 5), 30e3);
      await shot(mobile, 'phone-overview');
    });

    await step('phone: the menu opens and leads to the leases', async () => {
      await mobile.click('[data-test=nav-toggle]');
      await mobile.locator('[data-test=nav-leases]').waitFor({state: 'visible'});
      await shot(mobile, 'phone-menu');
      await mobile.click('[data-test=nav-leases]');
      await mobile.locator(`[data-test=lease-row][data-ipv4="${client1.ipv4}"]`).waitFor({state: 'visible'});
      check(await mobile.locator('[data-test=nav-leases]').isHidden(), 'the menu stayed open');
      await shot(mobile, 'phone-leases');
    });
    await phone.close();

    // ---------------- A viewer: sees the pages, gets no buttons that change anything.
    const readOnly = await browser.newContext({viewport: {width: 1440, height: 960}, ignoreHTTPSErrors: true,
                                               colorScheme: 'light', locale: 'en-US'});
    const vpage = await readOnly.newPage();
    currentPage = vpage;
    vpage.setDefaultTimeout(kWait);
    vpage.setDefaultNavigationTimeout(30e3);
    watch(vpage, 'viewer');

    await step('viewer: read-only pages, no actions', async () => {
      await vpage.goto(url);
      await vpage.fill('[data-test=login-user]', viewer.name);
      await vpage.fill('[data-test=login-password]', viewer.password);
      await vpage.click('[data-test=login-submit]');
      await vpage.locator('[data-test=app-view]').waitFor({state: 'visible'});
      check(await vpage.locator('[data-test=nav-users]').isHidden(), 'a viewer sees the Users page');
      await vpage.click('[data-test=nav-leases]');
      await vpage.locator(`[data-test=lease-row][data-ipv4="${client1.ipv4}"]`).waitFor({state: 'visible'});
      check(await vpage.locator('[data-test=lease-release]').count() === 0, 'a viewer gets Release buttons');
      await vpage.click('[data-test=nav-config]');
      await vpage.locator(lifetime).waitFor({state: 'visible'});
      check(await vpage.locator('[data-test=config-actions]').count() === 0, 'a viewer gets the apply buttons');
      check(await vpage.getAttribute(lifetime, 'readonly') !== null, 'a viewer can edit the config form');
      // And the API itself refuses, whatever the page shows.
      const r = await vpage.evaluate(async (ipv4) => (await fetch(`/api/leases/${ipv4}/release`, {method: 'POST'})).status,
                                     client1.ipv4);
      check(r === 403, `a viewer's release got HTTP ${r}`);
    });
    await readOnly.close();

    await step('no script errors or CSP violations in the console', async () => {
      check(consoleProblems.length === 0, `console:\n  ${consoleProblems.join('\n  ')}`);
    });
  } finally {
    currentPage = null;
    consoleLog.end();
    await browser.close().catch(() => {});
  }
}

// --- Main: overall deadline, cleanup, summary.
let exitCode = 1;
const overall = setTimeout(async () => {
  log(`overall timeout of ${args.timeout} s: giving up`);
  try { keepLabLogs(); } catch { /* best effort */ }
  await stopLab().catch(() => {});
  process.exit(1);
}, args.timeout * 1e3);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, async () => {
    log(`${sig}: stopping`);
    await stopLab().catch(() => {});
    process.exit(1);
  });
}

try {
  await run();
  exitCode = 0;
} catch (e) {
  if (!results.some((r) => !r.ok)) {
    results.push({name: 'setup', ok: false, error: e.message});
    log(`FAILED: ${e.stack || e.message}`);
  }
} finally {
  try {
    keepLabLogs();
  } catch (e) {
    log(`copying the lab's logs: ${e.message}`);
  }
  await stopLab().catch((e) => log(`stopping the lab: ${e.message}`));
  clearTimeout(overall);
}

if (exitCode === 0 && args.updateDocs) {
  const docs = path.resolve(here, '../../docs/screenshots');
  fs.mkdirSync(docs, {recursive: true});
  for (const f of shots) fs.copyFileSync(f, path.join(docs, path.basename(f)));
  log(`copied ${shots.length} screenshots to ${docs}`);
}
log(`screenshots in ${args.artifacts}: ${shots.map((f) => path.basename(f)).join(', ')}`);
const passed = results.filter((r) => r.ok).length;
const failed = results.filter((r) => !r.ok).length;
for (const r of results) console.log(`${r.ok ? 'PASS' : 'FAIL'} ${r.name}${r.ok ? '' : `: ${r.error}`}`);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && exitCode === 0 ? 0 : 1);
