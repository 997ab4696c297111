// Browser checks of the built console, driven through Debian's Chromium with playwright-core.
//
//   node browser/run.mjs SCENARIO --base http://127.0.0.1:8088 --out DIR [--namespace NS] [...]
//
// Each scenario prints one JSON line `{"ok": true, ...figures}` on success (or `{"ok": false,
// "error"}` and exits 1) and saves its screenshots under --out. The pytest integration tests
// (tests/integration/test_console_browser.py) start the console and the resources, then run these.
// A scenario that needs the caller to change something mid-way prints `{"waiting": "..."}` and
// waits for a line on stdin.
import { chromium } from "playwright-core";
import { gzipSync } from "node:zlib";
import { createInterface } from "node:readline";
import path from "node:path";

const args = process.argv.slice(2);
const scenario = args[0];
const option = (name, fallback) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : fallback;
};
const base = option("base", "http://127.0.0.1:8088");
const out = option("out", "test-results");
const namespace = option("namespace", "default");
const timeout = Number(option("timeout-ms", "20000"));

const stdin = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => stdin.once("line", resolve));

function print(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function shot(page, name) {
  const file = path.join(out, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** The first load: every script the page fetched, its bytes on the wire and gzipped. */
async function firstLoad(page) {
  const scripts = [];
  page.on("response", async (response) => {
    if (response.request().resourceType() !== "script") return;
    scripts.push(
      response.body().then(async (body) => {
        const sizes = await response.request().sizes();
        return {
          url: response.url().replace(base, ""),
          bytes: body.length,
          gzipBytes: gzipSync(body).length,
          transferredBytes: sizes.responseBodySize,
          encoding: (await response.allHeaders())["content-encoding"] ?? "identity",
        };
      }),
    );
  });
  return async () => {
    const all = await Promise.all(scripts);
    return {
      scripts: all,
      jsBytes: all.reduce((sum, s) => sum + s.bytes, 0),
      jsGzipBytes: all.reduce((sum, s) => sum + s.gzipBytes, 0),
      jsTransferredBytes: all.reduce((sum, s) => sum + s.transferredBytes, 0),
    };
  };
}

const card = (page, name) => page.locator(`article.card[data-resource="${name}"]`);

const scenarios = {
  /** The overview shows the named resources (--expect a:ok,b:failed) with their health; the
   * first load's JavaScript is measured; then each kind's list and a detail page are shot. */
  async overview(page) {
    const measure = await firstLoad(page);
    const expected = option("expect", "")
      .split(",")
      .filter(Boolean)
      .map((pair) => pair.split(":"));
    await page.goto(`${base}/#/`);
    for (const [name, health] of expected) {
      await card(page, name).locator(`[data-health="${health}"]`).waitFor({ timeout });
    }
    await page.waitForLoadState("networkidle").catch(() => {});
    const load = await measure();
    const cards = await page.locator("article.card").count();
    const screenshots = [await shot(page, "overview")];
    for (const plural of ["realtimeendpoints", "streampipelines", "batchjobs"]) {
      await page.goto(`${base}/#/k/${plural}`);
      await page.locator("table").first().waitFor({ timeout });
      screenshots.push(await shot(page, `list-${plural}`));
    }
    const detail = option("detail", "");
    if (detail) {
      const [plural, name] = detail.split("/");
      await page.goto(`${base}/#/k/${plural}/${namespace}/${name}`);
      await page.getByRole("heading", { name: "Conditions" }).waitFor({ timeout });
      await page.locator(".chart canvas").first().waitFor({ timeout });
      await page.locator("pre.yaml").waitFor({ timeout });
      screenshots.push(await shot(page, `detail-${plural}-${name}`));
    }
    return { cards, ...load, screenshots };
  },

  /** A resource shown healthy turns failing on the page within seconds of its status changing. */
  async unhealthy(page) {
    const name = option("name", "");
    await page.goto(`${base}/#/`);
    await card(page, name).locator('[data-health="ok"]').waitFor({ timeout });
    // from the moment the caller is asked to change the status (it patches, then answers)
    const started = Date.now();
    print({ waiting: "make it unhealthy" });
    await nextLine();
    await card(page, name).locator('[data-health="failed"]').waitFor({ timeout });
    const seconds = (Date.now() - started) / 1000;
    const message = await card(page, name).locator(".card-message").textContent();
    return { seconds, message, screenshots: [await shot(page, "overview-unhealthy")] };
  },

  /** A resource deleted while the console was down (the caller stops it, deletes, starts it
   * again on the same port) leaves the overview once the page has reconnected. */
  async outage(page) {
    const name = option("name", "");
    await page.goto(`${base}/#/`);
    await card(page, name).waitFor({ timeout });
    const started = Date.now();
    print({ waiting: "stop the console, delete the resource, start the console" });
    await nextLine();
    const restartedMs = Date.now() - started;
    // the page retries with backoff (1 s doubling to 15 s): within two of those after the restart
    await card(page, name).waitFor({ state: "detached", timeout: 35000 });
    const goneMs = Date.now() - started;
    const cards = await page.locator("article.card").count();
    return { restartedMs, goneMs, cards, screenshots: [await shot(page, "overview-after-outage")] };
  },

  /** The playground: a prompt streams a reply that shows its cost; the replay is a cache hit. */
  async chat(page) {
    const name = option("name", "chat");
    await page.goto(`${base}/#/playground/${namespace}/${name}`);
    await page.getByRole("textbox", { name: "Message" }).fill("Say hello to the console.");
    await page.getByRole("button", { name: "Send" }).click();
    const answers = page.getByTestId("answer-meta");
    await answers.first().waitFor({ timeout });
    const first = await answers.first().textContent();
    const firstText = await page.locator(".answer-text").first().textContent();
    await page.getByRole("button", { name: "Replay this prompt" }).first().click();
    await answers.nth(1).waitFor({ timeout });
    const replay = await answers.nth(1).textContent();
    const costs = await page.getByTestId("answer-cost").allTextContents();
    const caches = await answers.locator(".tag").allTextContents();
    return { first, firstText, replay, costs, caches, screenshots: [await shot(page, "playground")] };
  },

  /** Batch: a small file uploaded with its progress, the estimate shown, the run started; once the
   * caller says the run finished, the result downloads. */
  async batch(page) {
    const name = option("name", "");
    const file = option("file", "");
    await page.goto(`${base}/#/batch/${namespace}/${name}`);
    await signIn(page);
    await page.getByLabel(/^File/).setInputFiles(file);
    await page.getByRole("button", { name: "Upload" }).click();
    const uploaded = page.getByText(/^Uploaded \d+ records/);
    await uploaded.waitFor({ timeout });
    const upload = await uploaded.textContent();
    await page.getByText("Estimated cost (upper bound)").waitFor({ timeout });
    const estimate = await page.locator(".panel", { hasText: "2. Estimate and budget" }).locator(".metrics").textContent();
    await page.getByRole("button", { name: "Start" }).click();
    const screenshots = [await shot(page, "batch-started")];
    print({ waiting: "run the job to completion" });
    await nextLine();
    await page.locator('[data-phase="succeeded"]').waitFor({ timeout });
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout }),
      page.getByRole("button", { name: "Download results" }).click(),
    ]);
    const saved = path.join(out, download.suggestedFilename());
    await download.saveAs(saved);
    const progress = await page.getByRole("progressbar", { name: "Run progress" }).getAttribute("aria-valuenow");
    screenshots.push(await shot(page, "batch-completed"));
    // A finished one-off job runs again (the console creates it anew): no longer succeeded.
    await page.getByRole("button", { name: "Run again" }).click();
    await page.locator('[data-phase="succeeded"]').waitFor({ state: "detached", timeout });
    const rerun = await page.getByRole("button", { name: /^(Start|Run again)$/ }).textContent();
    const alerts = await page.getByRole("alert").allTextContents();
    return { upload, estimate, progress, download: saved, rerun, alerts, screenshots };
  },

  /** The stream live view: sample events sent with the button come back as results in the table
   * and on the charts (clicked again while the push gateway has not yet subscribed); a poison
   * event shows up among the dead letters. */
  async live(page) {
    const name = option("name", "");
    await page.goto(`${base}/#/stream/${namespace}/${name}`);
    await page.getByRole("status").getByText(/Receiving results/).waitFor({ timeout });
    const rows = page.getByRole("table", { name: "Results as they arrive" }).locator("tbody tr");
    const started = Date.now();
    let clicks = 0;
    while ((await rows.count()) < 10 || (await rows.first().textContent()).includes("No results")) {
      if (Date.now() - started > timeout * 3) throw new Error(`no results after ${clicks} clicks`);
      await page.getByRole("button", { name: "Send 10 sample events" }).click();
      clicks += 1;
      await rows.nth(9).waitFor({ timeout: 5000 }).catch(() => {});
    }
    const firstResultMs = Date.now() - started;
    const first = await rows.first().locator("td").allTextContents();
    // The charts draw each whole second once it has passed.
    await page.waitForFunction(
      () => [...document.querySelectorAll(".metric")].some((m) => /Results\/s/.test(m.textContent) && /[1-9]/.test(m.textContent)),
      null,
      { timeout },
    ).catch(() => {});
    await page.getByRole("button", { name: "Send a poison event" }).click();
    const letters = page.getByRole("table", { name: "Dead letters" }).locator("tbody tr", { hasText: "poison-" });
    await letters.first().waitFor({ timeout });
    const deadLetter = await letters.first().locator("td").allTextContents();
    const received = await page.locator(".metric", { hasText: "Results received" }).textContent();
    return { clicks, firstResultMs, first, received, deadLetter, screenshots: [await shot(page, "stream-live")] };
  },

  /** 200 resources on the overview (served to the page by the browser itself, so this measures the
   * page, not the backend): time until the first cards are on screen, until scrolling has shown all, the main thread's long tasks, and
   * how long a keystroke in the filter takes to paint and to show its result. */
  async perf200(page) {
    const count = Number(option("count", "200"));
    // The baseline in the same run: the same page and steps with 3 resources.
    const small = await page.context().newPage();
    const baselineRenderedMs = await overviewWith(small, 3);
    const baseline = await typeInFilter(small, 3);
    const renderedMs = await overviewWith(page, count);
    const typed = await typeInFilter(page, count);
    const scrollAllMs = await scrollToAll(page, count);
    const longTasks = await page.evaluate(() => window.__longTasks);
    return {
      resources: count,
      renderedMs,
      baselineRenderedMs,
      inputToPaintMs: typed.inputMs,
      baselineInputToPaintMs: baseline.inputMs,
      filterResultMs: typed.resultMs,
      scrollAllMs,
      longTasks: longTasks.length,
      longestTaskMs: Math.round(Math.max(0, ...longTasks)),
      totalBlockingMs: Math.round(longTasks.reduce((sum, d) => sum + Math.max(0, d - 50), 0)),
      screenshots: [await shot(page, "overview-200")],
    };
  },
};

/** Signs in through the header bar with the token in $CONSOLE_TOKEN (not an argument: the
 * process list shows those), as a person pastes theirs; the page reloads with it. */
async function signIn(page) {
  const bearer = process.env.CONSOLE_TOKEN;
  if (!bearer) throw new Error("this scenario acts as a user: set CONSOLE_TOKEN");
  await page.getByRole("button", { name: "Sign in with a token" }).click();
  await page.getByLabel("Bearer token").fill(bearer);
  await page.getByRole("button", { name: "Use" }).click();
  await page.getByRole("button", { name: "Token set" }).waitFor({ timeout });
}

/** Types into the overview's filter: per key, ms from the key press to the next painted frame
 * (what the typist feels) and to the filtered cards on screen. */
async function typeInFilter(page, count) {
  const names = Array.from({ length: count }, (_, index) => summary(index).name);
  const search = page.getByRole("searchbox", { name: "Filter resources" });
  await search.focus();
  const inputMs = [];
  const resultMs = [];
  for (const key of ["1", "9", "9", "Backspace", "Backspace", "Backspace"]) {
    const value = await search.inputValue();
    const text = key === "Backspace" ? value.slice(0, -1) : value + key;
    const expected = Math.min(PAGE, names.filter((name) => name.includes(text)).length);
    await page.evaluate(() => {
      window.__painted = new Promise((resolve) =>
        document.addEventListener(
          "keydown",
          (event) => {
            window.__pressed = event.timeStamp;
            requestAnimationFrame(() => setTimeout(() => resolve(performance.now()), 0));
          },
          { once: true },
        ),
      );
    });
    await page.keyboard.press(key);
    const painted = await page.evaluate(() => window.__painted);
    await waitForCards(page, expected);
    const done = await page.evaluate(() => performance.now());
    const pressed = await page.evaluate(() => window.__pressed);
    inputMs.push(Math.round(painted - pressed));
    resultMs.push(Math.round(done - pressed));
  }
  return { inputMs, resultMs };
}

// The overview renders this many cards, then more as the page scrolls (useIncremental).
const PAGE = 24;

function waitForCards(page, count) {
  return page.waitForFunction((n) => document.querySelectorAll("article.card").length === n, count, {
    timeout,
  });
}

/** Scrolls to the end of the overview until all `count` cards are there; the ms it took. */
async function scrollToAll(page, count) {
  const started = Date.now();
  while ((await page.locator("article.card").count()) < count) {
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    await page.waitForTimeout(50);
    if (Date.now() - started > timeout) {
      const shown = await page.locator("article.card").count();
      throw new Error(`the overview showed ${shown} of ${count} cards after scrolling`);
    }
  }
  return Date.now() - started;
}

/** Opens the overview with `count` resources served by the browser itself; ms until all are shown. */
async function overviewWith(page, count) {
  const items = Array.from({ length: count }, (_, index) => summary(index));
  const stream = items.map((item) => `event: upsert\ndata: ${JSON.stringify(item)}\n\n`).join("");
  await page.route("**/api/v1/watch*", (route) =>
    route.fulfill({ status: 200, headers: { "content-type": "text/event-stream" }, body: stream }),
  );
  await page.route("**/api/v1/namespaces", (route) =>
    route.fulfill({ status: 200, contentType: "application/json", body: '{"items": ["default"]}' }),
  );
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
    }).observe({ type: "longtask", buffered: true });
  });
  await page.goto(`${base}/#/`);
  await page.getByText(`${count} resources`).waitFor({ timeout });
  await waitForCards(page, Math.min(count, PAGE));
  return Math.round(await page.evaluate(() => performance.now()));
}

function summary(index) {
  const plurals = ["realtimeendpoints", "streampipelines", "batchjobs"];
  const kinds = ["RealtimeEndpoint", "StreamPipeline", "BatchJob"];
  const failing = index % 10 === 7;
  const name = `load-${String(index).padStart(3, "0")}`;
  return {
    kind: kinds[index % 3], plural: plurals[index % 3], namespace: "default", name,
    uid: `uid-${index}`, generation: 1, observedGeneration: 1,
    ready: failing ? "False" : "True", reason: failing ? "Unavailable" : "Ready",
    message: failing ? "no backend answers" : "", state: failing ? "Unavailable" : "Ready", url: null,
    latency: { p50Ms: 3 + (index % 7), p95Ms: 9 + (index % 13), p99Ms: 20 + (index % 17) },
    throughputPerSecond: 10 + index, costUsd: "0.001200", costWindow: "5m", progress: null,
    columns: { Ready: failing ? "False" : "True" }, window: "5m",
    observedAt: new Date().toISOString(), stale: false, createdAt: new Date().toISOString(),
  };
}

async function main() {
  const run = scenarios[scenario];
  if (!run) throw new Error(`no scenario ${scenario}; one of ${Object.keys(scenarios).join(", ")}`);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (error) => errors.push(String(error)));
    const logged = [];
    page.on("console", (message) => {
      if (message.type() === "error") logged.push(message.text());
    });
    let result;
    try {
      result = await run(page);
    } catch (error) {
      // What the page showed when the scenario gave up: a screenshot and its text.
      const file = await shot(page, `${scenario}-failed`).catch(() => "none");
      const text = await page.locator("body").innerText().catch(() => "");
      throw new Error(`${error?.message ?? error}\nscreenshot: ${file}\npage: ${text.slice(0, 1500)}\nconsole errors: ${[...errors, ...logged].join("; ")}`);
    }
    if (errors.length) throw new Error(`the page threw: ${errors.join("; ")}`);
    print({ ok: true, scenario, ...result });
  } finally {
    await browser.close();
    stdin.close();
  }
}

main().catch((error) => {
  print({ ok: false, scenario, error: String(error?.stack ?? error) });
  process.exit(1);
});
