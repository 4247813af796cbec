import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "@playwright/test";
import { freePort, startBridge, stopBridge } from "./support";

// This test runs a bridge of its own (scripts/test says where the binary is), with an API key
// and a gallery of the web app's images only, so it can stop and start it again on the same
// data directory.
const BIN = process.env.BRIDGE_BIN;
const KEY = "sk-e2e-secret";
const ENV = { API_KEY: KEY, GALLERY: "ui" };

test("the API key is asked for, kept, and the gallery survives a server restart", async ({ page, request }) => {
  expect(BIN, "scripts/test sets BRIDGE_BIN to the bridge binary").toBeTruthy();
  const dataDir = mkdtempSync(join(tmpdir(), "bridge-e2e-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let bridge = await startBridge(dataDir, port, ENV);
  try {
    await page.goto(`${base}/`);
    // The server needs a key and the browser has none: the panel opens and asks for it.
    const panel = page.locator("details.connection");
    await expect(panel.locator("summary")).toHaveText("API key needed");
    const key = panel.locator("input[name=api_key]");
    await expect(key).toBeVisible();
    await expect(panel).toContainText("This server needs an API key");
    // Escape closes it, and it stays closed while the page keeps asking the server.
    await key.press("Escape");
    await expect(panel).not.toHaveJSProperty("open", true);
    await expect(panel.locator("summary")).toBeFocused();
    await page.waitForTimeout(6_000);
    await expect(panel).not.toHaveJSProperty("open", true);
    await panel.locator("summary").press("Enter");
    await expect(key).toBeVisible();

    // Without it, the models cannot be listed and generating fails, in the envelope's words.
    const model = page.locator("select[name=model]");
    await expect(model.locator("option")).toContainText(["API key"]);
    await page.locator("textarea[name=prompt]").fill("a kept lantern");
    await page.getByRole("button", { name: "Generate" }).click();
    await expect(page.getByRole("alert")).toContainText("API key");

    await key.fill("sk-wrong");
    await expect(panel.locator("summary")).toHaveText("Wrong API key");
    await key.fill(KEY);
    await expect(panel).toContainText("Key accepted");
    await expect(panel.locator("summary")).toHaveText("ComfyUI ok · queue 0");
    await expect(model.locator("option[value=weightfree-txt2img]")).toHaveCount(1);
    await model.selectOption("weightfree-txt2img");
    await page.locator("select[name=size]").selectOption("64x64");
    await page.getByRole("button", { name: "Generate" }).click();
    await expect(page.locator(".results img.final")).toBeVisible({ timeout: 30_000 });
    // With GALLERY=ui, an image made through the API by another client is not kept.
    const api = await request.post(`${base}/v1/images/generations`, {
      headers: { Authorization: `Bearer ${KEY}` },
      data: { model: "weightfree-txt2img", prompt: "not for the gallery", size: "64x64" },
    });
    expect(api.ok()).toBeTruthy();

    await page.getByRole("link", { name: "Gallery" }).click();
    await expect(page.locator(".gallery .count")).toHaveText("1 image");

    // Stop the server and start it again on the same data: the browser still holds the key,
    // and the gallery still holds the image.
    await stopBridge(bridge);
    bridge = await startBridge(dataDir, port, ENV);
    await page.reload();
    await expect(page.locator(".gallery .count")).toHaveText("1 image");
    await expect(page.locator(".gallery .grid img").first()).toHaveAttribute("alt", "a kept lantern");
    await expect(page.locator("details.connection summary")).toHaveText("ComfyUI ok · queue 0");
  } finally {
    await stopBridge(bridge);
    rmSync(dataDir, { recursive: true, force: true });
  }
});
