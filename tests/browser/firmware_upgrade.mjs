// The firmware page in a real browser, against a real appliance (tests/firmware/lifecycle_test.sh
// runs it inside its namespace against the VM): log in, open Firmware, upload a refused bundle
// (the page says nothing was written), upload the newer bundle, check the verified version the
// page shows before anything is flashed, flash it, follow the progress to "Installed", and
// reboot from the page. Screenshots of each state go to the artifacts directory.
//
//   node firmware_upgrade.mjs --url URL --password P --bundle FILE --version V
//                             --refused FILE --artifacts DIR [--timeout S]
//
// Exit 0 when every step passed; 1 otherwise (the failing step's screenshot is kept).
import fs from 'node:fs';
import path from 'node:path';

const kChromium = '/usr/bin/chromium';
const kChromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
                       '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const kWait = 30e3;        // every wait in the page (the appliance runs under TCG)
const kInstall = 300e3;    // upload, verify and writing the slot under TCG

const args = {url: null, password: null, bundle: null, version: null, refused: null, artifacts: null,
              timeout: 480};
for (let i = 2; i < process.argv.length; ++i) {
  const a = process.argv[i];
  const value = () => {
    if (i + 1 >= process.argv.length) usage(`${a} needs a value`);
    return process.argv[++i];
  };
  if (a === '--url') args.url = value();
  else if (a === '--password') args.password = value();
  else if (a === '--bundle') args.bundle = value();
  else if (a === '--version') args.version = value();
  else if (a === '--refused') args.refused = value();
  else if (a === '--artifacts') args.artifacts = value();
  else if (a === '--timeout') args.timeout = Number(value());
  else usage(`unknown argument ${a}`);
}
for (const k of ['url', 'password', 'bundle', 'version', 'refused', 'artifacts'])
  if (!args[k]) usage(`--${k} is required`);

function usage(message) {
  console.error(`firmware_upgrade: ${message}\nusage: node firmware_upgrade.mjs --url URL --password P ` +
                '--bundle FILE --version V --refused FILE --artifacts DIR [--timeout S]');
  process.exit(64);
}

let chromium;
try {
  ({chromium} = await import('playwright-core'));
} catch (e) {
  console.error(`firmware_upgrade: playwright-core is not installed (${e.code || e.message}): run scripts/setup.sh, ` +
                'or npm ci in tests/browser');
  process.exit(1);
}

const log = (...m) => console.log(`[${new Date().toISOString().slice(11, 23)}] firmware_upgrade:`, ...m);
fs.mkdirSync(args.artifacts, {recursive: true});
const check = (cond, message) => {
  if (!cond) throw new Error(message);
};

let page = null;
async function step(name, fn) {
  log(`step: ${name}`);
  try {
    await fn();
  } catch (e) {
    if (page) {
      await page.screenshot({path: path.join(args.artifacts, `FAILED-${name.replace(/[^a-z0-9]+/gi, '-')}.png`),
                             fullPage: true, timeout: 10e3}).catch(() => {});
    }
    throw new Error(`${name}: ${e.message}`);
  }
}
const shot = (name) => page.screenshot({path: path.join(args.artifacts, `${name}.png`), fullPage: true,
                                        timeout: 15e3, animations: 'disabled'});

async function run() {
  const browser = await chromium.launch({executablePath: kChromium, args: kChromiumArgs, headless: true,
                                         timeout: 60e3});
  try {
    const context = await browser.newContext({viewport: {width: 1280, height: 1000}, ignoreHTTPSErrors: true,
                                              locale: 'en-US'});
    page = await context.newPage();
    page.setDefaultTimeout(kWait);
    page.setDefaultNavigationTimeout(60e3);
    const problems = [];
    page.on('pageerror', (e) => problems.push(`uncaught ${e.message}`));

    await step('log in', async () => {
      await page.goto(args.url);
      await page.locator('[data-test=login-view]').waitFor({state: 'visible'});
      await page.fill('[data-test=login-user]', 'admin');
      await page.fill('[data-test=login-password]', args.password);
      await page.click('[data-test=login-submit]');
      await page.locator('[data-test=app-view]').waitFor({state: 'visible'});
    });

    await step('the firmware page shows the running version and the slots', async () => {
      await page.click('[data-test=nav-firmware]');
      await page.locator('[data-test=fw-slot-A]').waitFor({state: 'visible'});
      check((await page.locator('[data-test=fw-slot-A]').textContent()).includes('running'),
            'slot A is not shown as running');
      await shot('firmware-before');
    });

    await step('a refused bundle: the page says nothing was written', async () => {
      await page.setInputFiles('[data-test=fw-file]', args.refused);
      await page.click('[data-test=fw-verify]');
      const refused = page.locator('[data-test=fw-refused]');
      await refused.waitFor({state: 'visible', timeout: kInstall});
      const text = await refused.textContent();
      check(/nothing was written/.test(text), `the refusal reads "${text}"`);
      check(await page.locator('[data-test=fw-flash]').isDisabled(), 'Flash is enabled after a refusal');
      await shot('firmware-refused');
    });

    await step(`upload and verify ${path.basename(args.bundle)}: version ${args.version} shown before flashing`,
               async () => {
      await page.setInputFiles('[data-test=fw-file]', args.bundle);
      await page.click('[data-test=fw-verify]');
      const version = page.locator('[data-test=fw-new-version]');
      await version.waitFor({state: 'visible', timeout: kInstall});
      check((await version.textContent()).trim() === args.version,
            `the page shows version "${await version.textContent()}"`);
      check(await page.locator('[data-test=fw-flash]').isEnabled(), 'Flash is not enabled');
      await shot('firmware-verified');
    });

    await step('flash: progress, then installed', async () => {
      await page.click('[data-test=fw-flash]');
      await page.locator('[data-test=fw-installed]').waitFor({state: 'visible', timeout: kInstall});
      const text = await page.locator('[data-test=fw-installed]').textContent();
      check(text.includes(args.version) && text.includes('slot B'), `the page says "${text}"`);
      await shot('firmware-installed');
    });

    await step('reboot from the page', async () => {
      await page.click('[data-test=fw-reboot]');
      await page.locator('[data-test=fw-rebooting]').waitFor({state: 'visible'});
    });
    check(problems.length === 0, `script errors in the page: ${problems.join('; ')}`);
  } finally {
    await browser.close().catch(() => {});
  }
}

const deadline = setTimeout(() => {
  console.error(`firmware_upgrade: FAIL: no result within ${args.timeout} s`);
  process.exit(1);
}, args.timeout * 1000);
try {
  await run();
  log('PASS');
  clearTimeout(deadline);
  process.exit(0);
} catch (e) {
  console.error(`firmware_upgrade: FAIL: ${e.message}`);
  process.exit(1);
}
