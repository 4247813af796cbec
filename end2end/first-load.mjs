// The web app's first load as a visitor gets it (scripts/bench): time until the Generate page
// answers input, in headless Chromium on a link throttled to 10 Mbit/s, with an empty cache
// (cold) and then again with what the first visit cached (warm), and the bytes each moved.
// Usage: node first-load.mjs URL [RUNS]; prints one JSON object.
import { chromium } from "@playwright/test";

const [url, runsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 3);
const MBIT = 1_000_000 / 8;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
});

/// Opens `url` and waits for hydration; gives back the milliseconds taken and the bytes moved
/// (all of them, and the wasm's).
async function visit(page) {
  const started = performance.now();
  await page.goto(url, { waitUntil: "commit" });
  await page.waitForSelector("html[data-hydrated]", { timeout: 120_000 });
  const ms = performance.now() - started;
  const moved = await page.evaluate(() => {
    const entries = [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")];
    const sum = (list) => list.reduce((total, e) => total + (e.transferSize ?? 0), 0);
    return { bytes: sum(entries), wasmBytes: sum(entries.filter((e) => e.name.endsWith(".wasm"))) };
  });
  return { ms, ...moved };
}

const cold = [];
const warm = [];
for (let i = 0; i < runs; i++) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 20,
    downloadThroughput: 10 * MBIT,
    uploadThroughput: 10 * MBIT,
  });
  cold.push(await visit(page));
  warm.push(await visit(page));
  await context.close();
}
await browser.close();

const median = (list, key) => {
  const sorted = list.map((r) => r[key]).sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
const summary = (list) => ({ ms: median(list, "ms"), bytes: median(list, "bytes"), wasm_bytes: median(list, "wasmBytes") });
console.log(JSON.stringify({ runs, cold: summary(cold), warm: summary(warm) }));
