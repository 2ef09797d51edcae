// End-to-end test of the dashboard in headless Chromium (Debian's package, no browser
// download): sign in, filter, open a conversation, search, view the charts, sign out.
// Screenshots go to the artifact directory. Usage: node run.mjs <base-url> <token> <artifact-dir>
// Exits 0 when every step passed; prints the failing step and saves failure.png otherwise.
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, token, artifacts] = process.argv.slice(2);
if (!base || !token || !artifacts) {
  console.error("usage: node run.mjs <base-url> <token> <artifact-dir>");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "confab-e2e-"));

// Without the background-networking flags Chromium waits on services it cannot reach here.
const launch = (dir, javaScriptEnabled) =>
  chromium.launchPersistentContext(dir, {
    executablePath,
    headless: true,
    javaScriptEnabled,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
const context = await launch(profile, true);
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(15000);

let step = "start";
const check = (cond, what) => {
  if (!cond) throw new Error(`check failed: ${what}`);
};
const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
const timings = [];
async function go(path) {
  const t0 = Date.now();
  const res = await page.goto(base + path);
  timings.push(`${path} ${Date.now() - t0} ms`);
  return res;
}

try {
  step = "sign-in redirect";
  await go("/");
  check(page.url().endsWith("/ui/login"), `redirected to the sign-in form, got ${page.url()}`);
  check((await page.getAttribute("html", "lang")) === "en", "html lang");

  step = "sign in";
  await page.getByLabel("API key").fill(token);
  await shot("login");
  await Promise.all([page.waitForURL("**/ui/conversations"), page.getByRole("button", { name: "Sign in" }).click()]);
  check(/Showing 1–\d+ of \d+ conversations/.test(await page.textContent("#count")), "list counts");
  await shot("conversations");

  step = "filter";
  await page.getByLabel("Agent", { exact: true }).fill("support-bot");
  await page.getByLabel("Status").selectOption("completed");
  await Promise.all([page.waitForURL(/agent=support-bot/), page.getByRole("button", { name: "Filter" }).click()]);
  const count = await page.textContent("#count");
  check(/of \d+ conversations/.test(count), `filtered count: ${count}`);
  const statuses = await page.$$eval("td[data-label=Status]", (tds) => tds.map((t) => t.textContent.trim()));
  check(statuses.length > 0 && statuses.every((s) => s === "completed"), `only completed rows: ${statuses}`);
  await shot("conversations-filtered");

  step = "open a conversation";
  await Promise.all([page.waitForURL(/\/ui\/conversations\/[0-9a-f-]{36}$/), page.locator("table.list tbody a").first().click()]);
  check((await page.locator(".chat .msg").count()) > 0, "transcript messages");
  check((await page.getByRole("heading", { name: "Insights" }).count()) === 1, "insights section");
  const tools = page.locator("details.tools summary").first();
  if (await tools.count()) await tools.click();
  await shot("conversation");

  step = "search";
  await go("/ui/search");
  await page.getByLabel("Search all messages").fill("refund");
  await Promise.all([page.waitForURL(/q=refund/), page.getByRole("button", { name: "Search" }).click()]);
  check((await page.locator(".hits mark").count()) > 0, "highlighted snippets");
  await shot("search");
  await Promise.all([page.waitForURL(/#m-\d+$/), page.locator(".hits a").first().click()]);
  check(await page.locator(".msg:target").isVisible(), "the hit's message is shown and targeted");

  step = "analytics";
  await go("/ui/analytics");
  check((await page.locator("svg.chart").count()) === 5, "five charts");
  check((await page.locator("svg.chart polyline").count()) >= 1, "the cumulative line");
  await shot("analytics");
  const agent = await page.locator("#a-agent option").nth(1).getAttribute("value");
  await page.selectOption("#a-agent", agent);
  await Promise.all([page.waitForURL(/agent=/), page.getByRole("button", { name: "Show" }).click()]);
  check((await page.locator("svg.chart").count()) === 5, "five charts for one agent");

  step = "accessibility basics";
  for (const path of ["/ui/conversations", "/ui/search", "/ui/analytics"]) {
    await go(path);
    const unlabelled = await page.$$eval("input:not([type=hidden]), select", (els) =>
      els.filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")).map((e) => e.name));
    check(unlabelled.length === 0, `every input has a label on ${path}: ${unlabelled}`);
  }
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement.classList.contains("skip")), "the first Tab reaches the skip link");

  step = "phone width";
  await page.setViewportSize({ width: 375, height: 812 });
  for (const [path, name] of [["/ui/conversations", "phone-conversations"], ["/ui/analytics", "phone-analytics"]]) {
    await go(path);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    check(wide <= 376, `no sideways scrolling at 375 px on ${path} (${wide})`);
    await shot(name);
  }
  await page.setViewportSize({ width: 1280, height: 900 });

  step = "sign out";
  await go("/ui/conversations");
  await Promise.all([page.waitForURL("**/ui/login"), page.getByRole("button", { name: "Sign out" }).click()]);
  await go("/ui/conversations");
  check(page.url().endsWith("/ui/login"), "signed out");

  step = "reading with JavaScript disabled";
  const noJsProfile = mkdtempSync(join(tmpdir(), "confab-e2e-nojs-"));
  const noJs = await launch(noJsProfile, false);
  try {
    const p = noJs.pages()[0] || (await noJs.newPage());
    p.setDefaultTimeout(15000);
    await p.goto(base + "/ui/login");
    await p.getByLabel("API key").fill(token);
    await Promise.all([p.waitForURL("**/ui/conversations"), p.getByRole("button", { name: "Sign in" }).click()]);
    check((await p.locator("table.list tbody tr").count()) === 25, "a full page of conversations without script");
    await Promise.all([p.waitForURL(/\/ui\/conversations\/[0-9a-f-]{36}$/), p.locator("table.list tbody a").first().click()]);
    check((await p.locator(".chat .msg").count()) > 0, "a transcript without script");
    await p.goto(base + "/ui/analytics");
    check((await p.locator("svg.chart").count()) === 5, "charts without script");
  } finally {
    await noJs.close();
    rmSync(noJsProfile, { recursive: true, force: true });
  }

  console.log("page loads (browser, including assets):\n  " + timings.join("\n  "));
  console.log("e2e: all steps passed");
} catch (e) {
  console.error(`e2e failed at step "${step}": ${e.message}`);
  try {
    await shot("failure");
  } catch (_) {}
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
