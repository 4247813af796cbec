import AxeBuilder from "@axe-core/playwright";
import { ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { resolve } from "node:path";
import { APIRequestContext, Locator, Page, expect } from "@playwright/test";

/// Picks a model on a page whose model list is filled in after hydration: waits for the option,
/// selects it, and gives back the select.
export async function chooseModel(page: Page, id: string): Promise<Locator> {
  const model = page.locator("select[name=model]");
  await expect(model.locator(`option[value=${id}]`)).toHaveCount(1);
  await model.selectOption(id);
  return model;
}

/// Fills Generate for a batch of `n` sdxl images of `steps` steps each and starts it.
export async function generateBatch(page: Page, prompt: string, n: number, steps: number) {
  await chooseModel(page, "sdxl");
  await page.locator("select[name=size]").selectOption("512x512");
  await page.locator("select[name=n]").selectOption(String(n));
  await page.locator("summary", { hasText: "Advanced" }).click();
  await page.locator("input[name=steps]").fill(String(steps));
  await page.locator("textarea[name=prompt]").fill(prompt);
  await page.getByRole("button", { name: "Generate", exact: true }).click();
}

/// How many gallery images match `search`, through the gallery's server function.
export async function galleryTotal(request: APIRequestContext, search: string): Promise<number> {
  const res = await request.post("/api/gallery/list", {
    data: { query: { page: 0, per_page: 10, search, model: null }, api_key: "" },
  });
  return (await res.json()).total;
}

/// The Edit page with a 256x256 picture of the bridge's picked from a file, read by the page;
/// gives back the picture's bytes.
export async function editWithPicture(page: Page, request: APIRequestContext): Promise<Buffer> {
  const res = await request.post("/v1/images/generations", {
    data: { model: "weightfree-txt2img", prompt: "a card to edit", size: "256x256" },
  });
  const png = Buffer.from((await res.json()).data[0].b64_json, "base64");
  await page.goto("/edit");
  await expect(page.locator("select[name=model] option[value=weightfree-blend]")).toHaveCount(1);
  await page.locator("input[name=image]").setInputFiles({ name: "card.png", mimeType: "image/png", buffer: png });
  await expect(page.locator(".drop")).toContainText("256x256.");
  return png;
}

/// Paints a stroke across the middle of Edit's mask.
export async function paintStroke(page: Page) {
  const canvas = page.locator("canvas.mask");
  await canvas.scrollIntoViewIfNeeded();
  const box = (await canvas.boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.5, { steps: 8 });
  await page.mouse.up();
  await expect(page.getByRole("button", { name: "Clear mask" })).toBeEnabled();
}

/// A port nothing listens on now.
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/// Starts a bridge of the test's own (`BRIDGE_BIN`, demo backend) on `dataDir`, with `env`
/// added to its environment, and waits until it answers.
export async function startBridge(dataDir: string, port: number, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.env.BRIDGE_BIN!, ["--demo", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir], {
    // From the repository, where the workflows are.
    cwd: resolve(__dirname, "..", ".."),
    env: { ...process.env, DEMO_STEP_DELAY_MS: "5", RUST_LOG: "warn", ...env },
    stdio: "ignore",
  });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) return child;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error("the bridge did not start");
}

export async function stopBridge(child: ChildProcess) {
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

/// WCAG 2.2 A and AA, and axe's best practices (unique landmark names among them).
const RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"];

export async function violations(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).withTags(RULES).analyze();
  return result.violations.flatMap((v) =>
    v.nodes.map((n) => `${v.id}: ${n.target.join(" ")}: ${n.failureSummary?.split("\n")[1]?.trim() ?? ""}`),
  );
}
