import { Locator, Page, expect, test } from "@playwright/test";
import { chooseModel, galleryTotal } from "./support";

/// Makes `n` small images on the Generate page and waits for all of them.
async function generate(page: Page, prompt: string, n: number, seed?: number) {
  await page.goto("/");
  await chooseModel(page, "weightfree-txt2img");
  await page.locator("select[name=size]").selectOption("64x64");
  await page.locator("select[name=n]").selectOption(String(n));
  if (seed !== undefined) await page.locator("input[name=seed]").fill(String(seed));
  await page.locator("textarea[name=prompt]").fill(prompt);
  await page.getByRole("button", { name: "Generate" }).click();
  await expect(page.locator(".results img.final")).toHaveCount(n, { timeout: 30_000 });
}

/// Whether the focused element is inside the open viewer.
const focusInViewer = (page: Page) =>
  page.evaluate(() => document.activeElement?.closest("dialog.viewer[open]") != null);

/// The sources of the results, in order.
const resultSources = (page: Page) =>
  page.locator(".results img.final").evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).src));

test("a result opens in the viewer from the keyboard, keeps the focus, and gives it back", async ({ page }) => {
  await generate(page, "a paper crane", 2);
  const sources = await resultSources(page);
  const opener = page.locator(".results button.open").first();
  await opener.focus();
  await page.keyboard.press("Enter");

  const viewer = page.getByRole("dialog", { name: "Result viewer" });
  await expect(viewer).toBeVisible();
  expect(await focusInViewer(page)).toBe(true);
  const shown = viewer.locator(".viewer-stage img");
  await expect(shown).toHaveAttribute("src", sources[0]);
  await expect(shown).toHaveAttribute("alt", "a paper crane");
  await expect(viewer.locator(".viewer-count")).toHaveText("1 of 2");

  // Tab and Shift+Tab go round the viewer's controls and never leave it.
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press("Tab");
    expect(await focusInViewer(page), `after Tab ${i + 1}`).toBe(true);
  }
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press("Shift+Tab");
    expect(await focusInViewer(page), `after Shift+Tab ${i + 1}`).toBe(true);
  }

  await page.keyboard.press("ArrowRight");
  await expect(shown).toHaveAttribute("src", sources[1]);
  await expect(viewer.locator(".viewer-count")).toHaveText("2 of 2");
  expect(await focusInViewer(page)).toBe(true);
  await page.keyboard.press("ArrowLeft");
  await expect(shown).toHaveAttribute("src", sources[0]);

  await page.keyboard.press("Escape");
  await expect(viewer).toBeHidden();
  await expect(opener).toBeFocused();
});

test("the viewer fits the image to the screen, shows it at its actual size, and closes on the backdrop", async ({ page }) => {
  await generate(page, "a lantern", 1);
  await page.locator(".results button.open").click();
  const viewer = page.getByRole("dialog", { name: "Result viewer" });
  const shown = viewer.locator(".viewer-stage img");
  await expect(shown).toBeVisible();
  // Fit: the 64-pixel image fills the height the screen leaves it.
  await expect.poll(async () => (await shown.boundingBox())!.height).toBeGreaterThan(300);
  const zoom = viewer.getByRole("button", { name: "Actual size" });
  await zoom.click();
  await expect(zoom).toHaveAttribute("aria-pressed", "true");
  await expect.poll(async () => (await shown.boundingBox())!.width).toBe(64);
  // A click on the image goes back to fitting it.
  await shown.click();
  await expect(zoom).toHaveAttribute("aria-pressed", "false");
  await expect.poll(async () => (await shown.boundingBox())!.height).toBeGreaterThan(300);

  // The empty space beside the image closes the viewer, as does the backdrop around it.
  const stage = (await viewer.locator(".viewer-stage").boundingBox())!;
  await page.mouse.click(stage.x + 4, stage.y + stage.height / 2);
  await expect(viewer).toBeHidden();
  await page.locator(".results button.open").click();
  await expect(viewer).toBeVisible();
  await page.mouse.click(4, 4);
  await expect(viewer).toBeHidden();
});

test("copy seed puts the seed on the clipboard and says so", async ({ page, context }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await generate(page, "a pebble", 1, 9876);
  await page.locator(".results button.open").click();
  const viewer = page.getByRole("dialog", { name: "Result viewer" });
  await viewer.getByRole("button", { name: "Copy seed" }).click();
  await expect(viewer.locator(".viewer-said")).toHaveText("Seed 9876 copied.");
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe("9876");
  const download = viewer.getByRole("link", { name: "Download" });
  await expect(download).toHaveAttribute("download", "image-9876.png");
});

test("send to Edit opens the result in Edit, ready to be edited", async ({ page }) => {
  await generate(page, "a teapot", 1);
  await page.locator(".results button.open").click();
  await page.getByRole("dialog", { name: "Result viewer" }).getByRole("button", { name: "Send to Edit" }).click();
  await expect(page).toHaveURL(/\/edit$/);
  await expect(page.locator(".drop")).toContainText("64x64.");
  await expect(page.locator("textarea[name=prompt]")).toHaveValue("a teapot");
  await chooseModel(page, "weightfree-img2img");
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await expect(page.locator(".results img.final")).toBeVisible({ timeout: 30_000 });

  // And an edit's own result goes back into the form it came from.
  const made = await resultSources(page);
  await page.locator(".results button.open").click();
  await page.getByRole("dialog", { name: "Result viewer" }).getByRole("button", { name: "Send to Edit" }).click();
  await expect(page.locator("img.source")).toHaveAttribute("src", made[0]);
  await expect(page.locator(".drop")).toContainText("64x64.");
});

test("use settings on an edited image shows and sends a model Generate takes", async ({ page, request }) => {
  const tag = `u${Date.now()}`;
  // An image made by an image-to-image model, as the API's edits endpoint makes it.
  const made = await request.post("/v1/images/generations", {
    data: { model: "weightfree-txt2img", prompt: "a card", size: "512x512" },
  });
  const card = Buffer.from((await made.json()).data[0].b64_json, "base64");
  const edited = await request.post("/v1/images/edits", {
    multipart: {
      image: { name: "card.png", mimeType: "image/png", buffer: card },
      prompt: `${tag} a card in ink`,
      model: "sdxl-img2img",
      steps: "2",
      seed: "31337",
    },
  });
  expect(edited.ok()).toBeTruthy();
  await expect.poll(() => galleryTotal(request, tag)).toBe(1);

  await page.goto(`/gallery?search=${tag}`);
  await page.locator(".gallery .grid button").first().click();
  const viewer = page.getByRole("dialog", { name: "Image details" });
  await expect(viewer.locator(".model")).toHaveText("sdxl-img2img");
  await viewer.getByRole("link", { name: "Use settings" }).click();

  await expect(page).toHaveURL(/\/\?prompt=/);
  const model = page.locator("select[name=model]");
  await expect(model).toHaveValue("sdxl");
  await expect(page.locator("form .notice")).toHaveText(
    "sdxl-img2img changes an input image and cannot make one from a prompt; the form uses sdxl instead.",
  );
  await expect(page.locator("input[name=seed]")).toHaveValue("31337");
  await expect(page.locator("textarea[name=prompt]")).toHaveValue(`${tag} a card in ink`);

  const sent = page.waitForRequest("**/v1/images/generations");
  await page.getByRole("button", { name: "Generate" }).click();
  expect(JSON.parse((await sent).postData()!).model).toBe("sdxl");
  await expect(page.locator(".results figcaption")).toContainText("Done · seed 31337", { timeout: 30_000 });
  await expect(page.getByRole("alert")).toHaveCount(0);
});

test("the gallery's viewer moves through the page and fits a phone", async ({ page, request }) => {
  const tag = `v${Date.now()}`;
  const res = await request.post("/v1/images/generations", {
    data: { model: "weightfree-txt2img", prompt: `${tag} a long prompt ${"word ".repeat(40)}`, size: "64x64", n: 3 },
  });
  expect(res.ok()).toBeTruthy();
  await expect.poll(() => galleryTotal(request, tag)).toBe(3);

  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`/gallery?search=${tag}`);
  const thumbs = page.locator(".gallery .grid button");
  await expect(thumbs).toHaveCount(3);
  await thumbs.nth(1).click();
  const viewer = page.getByRole("dialog", { name: "Image details" });
  await expect(viewer.locator(".viewer-count")).toHaveText("2 of 3");
  const seeds: string[] = [];
  for (let i = 0; i < 3; i++) {
    seeds.push((await viewer.locator(".seed").textContent())!);
    await page.keyboard.press("ArrowRight");
  }
  // Round from the last back to the first, each image once.
  expect(new Set(seeds).size).toBe(3);
  await expect(viewer.locator(".viewer-count")).toHaveText("2 of 3");

  const width = await page.evaluate(() => window.innerWidth);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, "the page scrolls sideways").toBeLessThanOrEqual(0);
  const controls: Locator = viewer.locator("button:visible, a:visible");
  expect(await controls.count()).toBeGreaterThanOrEqual(8);
  for (const control of await controls.all()) {
    await control.scrollIntoViewIfNeeded();
    const box = (await control.boundingBox())!;
    const name = (await control.textContent())?.trim();
    expect(box.x, `${name} starts on screen`).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width, `${name} ends on screen`).toBeLessThanOrEqual(width);
  }
  // Close is at the top, on screen without any scrolling.
  await viewer.evaluate((d) => d.scrollTo(0, 0));
  const close = (await viewer.getByRole("button", { name: "Close" }).boundingBox())!;
  expect(close.y).toBeGreaterThanOrEqual(0);
  expect(close.y + close.height).toBeLessThanOrEqual(844);
  await viewer.getByRole("button", { name: "Close" }).click();
  await expect(viewer).toBeHidden();
  await expect(thumbs.nth(1)).toBeFocused();
});
