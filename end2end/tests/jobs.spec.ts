import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "@playwright/test";
import { chooseModel, freePort, generateBatch, startBridge, stopBridge, violations } from "./support";

test("each image of a batch shows the moment it is done, not when the last one is", async ({ page }) => {
  await page.goto("/");
  await generateBatch(page, "four paper boats", 4, 10);
  const done = page.locator(".results img.final");
  await expect(done.first()).toBeVisible({ timeout: 30_000 });
  expect(await done.count(), "images shown when the first one was").toBeLessThan(4);
  // The jobs panel counts them as they come.
  const jobs = page.getByRole("complementary", { name: "Jobs" });
  await expect(jobs.locator(".job-status")).toContainText(/[1-3] of 4 done/);
  await expect(done).toHaveCount(4, { timeout: 30_000 });
  await expect(jobs).toBeHidden();
});

test("the jobs panel follows a run onto every page, and its Cancel empties ComfyUI's queue", async ({ page }) => {
  // A bridge of the test's own, so ComfyUI's queue holds this test's jobs alone.
  const dataDir = mkdtempSync(join(tmpdir(), "bridge-e2e-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const bridge = await startBridge(dataDir, port, { DEMO_STEP_DELAY_MS: "20" });
  // What ComfyUI itself reports as queued or running, as /health reads it from the server.
  const comfyQueue = async () => (await (await fetch(`${base}/health`)).json()).servers[0].queue_remaining;
  try {
    await page.goto(`${base}/`);
    const jobs = page.getByRole("complementary", { name: "Jobs" });
    await expect(jobs).toBeHidden();
    await generateBatch(page, "a queue of lanterns", 4, 200);
    await expect(jobs).toBeVisible();
    await expect(jobs.locator(".job-prompt")).toHaveText("a queue of lanterns");
    await expect(jobs.locator(".job-status")).toContainText(/0 of 4 done · Step \d+ of 200/);
    expect(await comfyQueue(), "the batch waiting in ComfyUI").toBeGreaterThan(1);

    // Another page: the run goes on, and the panel is still there with its Cancel.
    const nav = page.getByRole("navigation", { name: "Main" });
    await nav.getByRole("link", { name: "Gallery" }).click();
    await expect(page).toHaveURL(/\/gallery$/);
    await expect(jobs.locator(".job-status")).toContainText(/Step \d+ of 200/);
    // The panel itself passes the accessibility scan, in both themes.
    for (const scheme of ["dark", "light"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      expect(await violations(page), `jobs panel (${scheme})`).toEqual([]);
    }
    await jobs.getByRole("button", { name: "Cancel the generate job" }).click();
    await expect(jobs).toBeHidden();
    await expect.poll(comfyQueue, { timeout: 15_000 }).toBe(0);

    // Back on Generate, the run says it was cancelled.
    await nav.getByRole("link", { name: "Generate" }).click();
    await expect(page.locator(".results figcaption").first()).toContainText("Cancelled");
  } finally {
    await stopBridge(bridge);
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("at desktop width the results sit beside the form, large; on a phone below it", async ({ page }) => {
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto("/");
  await chooseModel(page, "weightfree-txt2img");
  await page.locator("select[name=size]").selectOption("64x64");
  await page.locator("select[name=n]").selectOption("2");
  await page.locator("textarea[name=prompt]").fill("side by side");
  const button = page.getByRole("button", { name: "Generate", exact: true });
  // The button, and so the progress that follows it, is on the first screen.
  const pressed = (await button.boundingBox())!;
  expect(pressed.y + pressed.height).toBeLessThanOrEqual(800);
  await button.click();
  await expect(page.locator(".results img.final")).toHaveCount(2, { timeout: 30_000 });
  const form = (await page.locator("form.generate").boundingBox())!;
  const frame = (await page.locator(".results .frame").first().boundingBox())!;
  expect(frame.x, "results right of the form").toBeGreaterThanOrEqual(form.x + form.width);
  expect(frame.y, "results at the top, beside the form").toBeLessThan(form.y + form.height / 2);
  expect(frame.width, "frames are large").toBeGreaterThanOrEqual(240);

  await page.setViewportSize({ width: 390, height: 844 });
  const narrowForm = (await page.locator("form.generate").boundingBox())!;
  const narrowFrame = (await page.locator(".results .frame").first().boundingBox())!;
  expect(narrowFrame.y, "results below the form").toBeGreaterThanOrEqual(narrowForm.y + narrowForm.height);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
});
