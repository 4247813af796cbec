import { expect, test } from "@playwright/test";
import { chooseModel } from "./support";

test("every page fits a phone's width", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of ["/", "/edit", "/chat", "/gallery"]) {
    await page.goto(path);
    // Hydrated: the connection summary has been filled in.
    await expect(page.locator("details.connection summary")).not.toHaveText("Connecting…");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `${path} scrolls sideways`).toBeLessThanOrEqual(0);
  }
});

test("Generate works from the keyboard alone", async ({ page }) => {
  await page.goto("/");
  await chooseModel(page, "weightfree-txt2img");
  await page.locator("select[name=size]").selectOption("64x64");
  await page.locator("textarea[name=prompt]").focus();
  await page.keyboard.type("a paper boat");
  // Tab along the form to the Generate button and press it.
  for (let i = 0; i < 20; i++) {
    const label = await page.evaluate(() => document.activeElement?.textContent?.trim());
    if (label === "Generate") break;
    await page.keyboard.press("Tab");
  }
  await expect(page.locator(":focus")).toHaveText("Generate");
  await page.keyboard.press("Enter");
  await expect(page.locator(".results img.final")).toBeVisible({ timeout: 30_000 });
});

test("the web app's files carry their content hash and are cached for good", async ({ page }) => {
  const seen: { url: string; status: number; cache?: string }[] = [];
  page.on("response", (r) => {
    if (new URL(r.url()).pathname.startsWith("/pkg/")) {
      seen.push({ url: r.url(), status: r.status(), cache: r.headers()["cache-control"] });
    }
  });
  await page.goto("/");
  // Hydrated: the model list arrives from the API.
  await expect(page.locator("select[name=model] option[value=sdxl]")).toHaveCount(1);
  const kinds = seen.map((s) => s.url.split(".").pop());
  for (const kind of ["js", "wasm", "css"]) expect(kinds).toContain(kind);
  // The other pages' own files, and the loader that fetches them, as they are opened.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Gallery" }).click();
  await expect(page.getByRole("heading", { name: "Gallery" })).toBeVisible();
  expect(seen.map((s) => s.url).filter((u) => u.includes("gallery_route"))).toHaveLength(1);
  for (const file of seen) {
    expect(file.status, file.url).toBe(200);
    expect(file.url).toMatch(/\/pkg\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}\.(js|wasm|css)$/);
    expect(file.cache, file.url).toBe("public, max-age=31536000, immutable");
  }
});

test("Generate loads its own code only; each other page's comes when it is first opened", async ({ page }) => {
  const wasm: string[] = [];
  page.on("response", (r) => {
    if (r.url().endsWith(".wasm")) wasm.push(new URL(r.url()).pathname);
  });
  const pages = (names: string[]) => names.filter((n) => /(edit|chat|gallery)_route/.test(n));
  const main = page.getByRole("navigation", { name: "Main" });

  await page.goto("/");
  await chooseModel(page, "weightfree-txt2img");
  expect(wasm).toHaveLength(1);

  // Opened from Generate, Edit fetches its file and works.
  await main.getByRole("link", { name: "Edit" }).click();
  await expect(page.locator("select[name=model] option[value=weightfree-blend]")).toHaveCount(1);
  expect(pages(wasm)).toEqual([expect.stringContaining("edit_route")]);
  // Back on Generate, nothing more is fetched, and Chat is fetched when it is opened.
  await main.getByRole("link", { name: "Generate" }).click();
  await expect(page.locator("textarea[name=prompt]")).toBeVisible();
  await main.getByRole("link", { name: "Chat" }).click();
  await expect(page.locator("textarea[name=message]")).toBeVisible();
  await expect.poll(() => pages(wasm)).toEqual([expect.stringContaining("edit_route"), expect.stringContaining("chat_route")]);

  // A page opened at its own address comes with its file, and is hydrated: its model list arrives.
  wasm.length = 0;
  await page.goto("/edit");
  await expect(page.locator("select[name=model] option[value=weightfree-blend]")).toHaveCount(1);
  expect(pages(wasm)).toEqual([expect.stringContaining("edit_route")]);
});

test("Ctrl+Enter generates, and a seed that is not a number is said, not replaced", async ({ page }) => {
  await page.goto("/");
  await chooseModel(page, "weightfree-txt2img");
  await page.locator("select[name=size]").selectOption("64x64");
  const seed = page.locator("input[name=seed]");
  await seed.fill("-5");
  await expect(page.locator("#seed-problem")).toContainText("A seed is a whole number");
  await expect(seed).toHaveAttribute("aria-invalid", "true");
  await page.locator("textarea[name=prompt]").fill("a paper boat");
  await page.keyboard.press("Control+Enter");
  // Nothing was sent with a made-up seed.
  await page.waitForTimeout(500);
  await expect(page.locator(".results img.final")).toHaveCount(0);

  await seed.fill("123");
  await expect(page.locator("#seed-problem")).toBeEmpty();
  await page.locator("textarea[name=prompt]").focus();
  await page.keyboard.press("Control+Enter");
  await expect(page.locator(".results img.final")).toBeVisible({ timeout: 30_000 });
  await expect(page.locator(".results figcaption")).toContainText("seed 123");
});
