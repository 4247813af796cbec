import { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Page, expect, test } from "@playwright/test";
import { freePort, startBridge, stopBridge, violations } from "./support";

// A bridge of its own, which needs an API key.
const KEY = "sk-e2e-key";
let bridge: ChildProcess;
let base: string;
let dataDir: string;

test.beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "bridge-key-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  bridge = await startBridge(dataDir, port, { API_KEY: KEY });
});

test.afterAll(async () => {
  await stopBridge(bridge);
  rmSync(dataDir, { recursive: true, force: true });
});

/// Generates with the panel closed, as someone who did not read it would.
async function generateWithPanelClosed(page: Page) {
  const panel = page.locator("details.connection");
  await panel.locator("summary").click();
  await expect(panel).not.toHaveJSProperty("open", true);
  await page.locator("textarea[name=prompt]").fill("a lantern");
  await page.getByRole("button", { name: "Generate" }).click();
}

test("a missing key and a wrong key are told apart, and the key field gets the focus", async ({ page }) => {
  await page.goto(`${base}/`);
  const panel = page.locator("details.connection");
  const key = panel.locator("input[name=api_key]");
  await expect(panel.locator("summary")).toHaveText("API key needed");
  await expect(panel.locator(".key-state")).toHaveText(/^This server needs an API key/);
  await expect(page.locator("select[name=model] option[disabled]")).toHaveText("Enter the API key to list the models");

  await generateWithPanelClosed(page);
  await expect(page.getByRole("alert")).toHaveText(/^You didn't provide an API key\./);
  await expect(panel).toHaveJSProperty("open", true);
  await expect(key).toBeFocused();

  await key.fill("sk-wrong");
  await expect(panel.locator("summary")).toHaveText("Wrong API key");
  await expect(panel.locator(".key-state")).toHaveText(/^This key is not one of this server's/);
  await expect(page.locator("select[name=model] option[disabled]")).toHaveText("The API key was not accepted");
  await generateWithPanelClosed(page);
  await expect(page.getByRole("alert")).toHaveText(/^Incorrect API key provided\./);
  await expect(key).toBeFocused();
  for (const scheme of ["dark", "light"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    expect(await violations(page), `wrong key (${scheme})`).toEqual([]);
  }

  await key.fill(KEY);
  await expect(panel.locator(".key-state")).toHaveText(/^Key accepted/);
  await expect(page.locator("select[name=model] option[value=weightfree-txt2img]")).toHaveCount(1);
});

test("a message refused for the key in Chat brings the focus to the key field", async ({ page }) => {
  await page.goto(`${base}/chat`);
  const panel = page.locator("details.connection");
  await expect(panel.locator("summary")).toHaveText("API key needed");
  await panel.locator("summary").click();
  await expect(panel).not.toHaveJSProperty("open", true);
  await page.locator("textarea[name=message]").fill("a boat");
  await page.locator("textarea[name=message]").press("Enter");
  await expect(page.locator(".turn.assistant")).toContainText("You didn't provide an API key.");
  await expect(panel.locator("input[name=api_key]")).toBeFocused();
});

test("without the key, no page and no answer tells where ComfyUI runs", async ({ page, request }) => {
  // Where the (simulated) ComfyUI is, as told to someone with the key.
  const told = await request.get(`${base}/health`, { headers: { Authorization: `Bearer ${KEY}` } });
  const comfy: string = (await told.json()).servers[0].url;
  expect(comfy).toMatch(/^https?:\/\//);
  const host = new URL(comfy).host;

  const open = await request.get(`${base}/health`);
  expect(open.ok()).toBeTruthy();
  const health = await open.text();
  expect(health).not.toContain(host);
  expect(JSON.parse(health).servers[0].reachable).toBe(true);
  const overview = await request.post(`${base}/api/overview`, { data: { api_key: "sk-wrong" } });
  expect(await overview.text()).not.toContain(host);

  for (const path of ["/", "/edit", "/chat", "/gallery"]) {
    await page.goto(`${base}${path}`);
    const panel = page.locator("details.connection");
    await expect(panel.locator("summary")).toHaveText("API key needed");
    await expect(panel.locator(".servers")).toContainText("server 1 reachable");
    expect(await page.content(), path).not.toContain(host);
  }
  // With the key, the panel says where it is.
  await page.locator("details.connection input[name=api_key]").fill(KEY);
  await expect(page.locator("details.connection .servers code")).toHaveText(comfy);
});
