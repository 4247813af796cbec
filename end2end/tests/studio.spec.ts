import { Locator, Page, expect, test } from "@playwright/test";
import { chooseModel, editWithPicture, paintStroke } from "./support";

/// Generate's form filled with settings other than its defaults.
async function fillGenerate(page: Page, prompt: string) {
  await page.goto("/");
  await chooseModel(page, "sdxl");
  await page.locator("select[name=size]").selectOption("512x512");
  await page.locator("select[name=n]").selectOption("2");
  await page.locator("input[name=seed]").fill("4242");
  await page.locator("summary", { hasText: "Advanced" }).click();
  await page.locator("input[name=steps]").fill("6");
  await page.locator("textarea[name=prompt]").fill(prompt);
}

/// Whether the form shows the settings `fillGenerate` put in.
async function expectGenerateForm(page: Page, prompt: string) {
  await expect(page.locator("textarea[name=prompt]")).toHaveValue(prompt);
  await expect(page.locator("select[name=model]")).toHaveValue("sdxl");
  await expect(page.locator("select[name=size]")).toHaveValue("512x512");
  await expect(page.locator("select[name=n]")).toHaveValue("2");
  await expect(page.locator("input[name=seed]")).toHaveValue("4242");
  await expect(page.locator("input[name=steps]")).toHaveValue("6");
}

/// The seeds the result frames show, in order.
async function shownSeeds(page: Page): Promise<string[]> {
  const captions = await page.locator(".results figcaption").allTextContents();
  return captions.map((c) => c.match(/seed (\d+)/)?.[1] ?? "");
}

/// Every final image has loaded: a picture, not a broken icon.
async function expectImagesLoaded(page: Page, count: number) {
  const images = page.locator(".results img.final");
  await expect(images).toHaveCount(count, { timeout: 30_000 });
  for (const img of await images.all()) {
    await expect.poll(() => img.evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth)).toBe(512);
  }
}

/// A digest of an image's decoded pixels: the same picture, however the page lays it out.
async function pixels(img: Locator): Promise<string> {
  return img.evaluate((el: HTMLImageElement) => {
    const canvas = document.createElement("canvas");
    canvas.width = el.naturalWidth;
    canvas.height = el.naturalHeight;
    const context = canvas.getContext("2d")!;
    context.drawImage(el, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    // FNV-1a over every byte.
    let hash = 0x811c9dc5;
    for (const byte of data) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    return `${canvas.width}x${canvas.height}:${hash.toString(16)}`;
  });
}

test("Generate's form and results survive leaving the page mid-run, and a reload", async ({ page }) => {
  const prompt = `kept ${Date.now()} a lighthouse`;
  await fillGenerate(page, prompt);
  await page.getByRole("button", { name: "Generate" }).click();
  await expect(page.locator(".results figure")).toHaveCount(2);

  // Away while it runs, and back: the run went on, and the form is as it was left.
  await page.getByRole("link", { name: "Gallery" }).click();
  await expect(page.getByRole("heading", { name: "Gallery" })).toBeVisible();
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Generate" }).click();
  await expectGenerateForm(page, prompt);
  await expectImagesLoaded(page, 2);
  const seeds = await shownSeeds(page);
  expect(seeds).toEqual(["4242", "4243"]);

  // A reload keeps the form and the same images.
  const before = await pixels(page.locator(".results img.final").first());
  await page.reload();
  await expectGenerateForm(page, prompt);
  await expectImagesLoaded(page, 2);
  expect(await shownSeeds(page)).toEqual(seeds);
  await expect(page.locator(".results img.final").first()).toHaveAttribute("alt", prompt);
  expect(await pixels(page.locator(".results img.final").first()), "the same image").toBe(before);
  // Only the fields sit in local storage; the images are elsewhere.
  const stored = await page.evaluate(() => JSON.stringify(localStorage).length);
  expect(stored).toBeLessThan(4_000);
});

test("settings in the address win over the kept form", async ({ page }) => {
  await fillGenerate(page, "a kept prompt");
  await page.goto("/?prompt=from+the+gallery&seed=7");
  await expect(page.locator("textarea[name=prompt]")).toHaveValue("from the gallery");
  await expect(page.locator("input[name=seed]")).toHaveValue("7");
  await page.goto("/");
  await expect(page.locator("textarea[name=prompt]")).toHaveValue("from the gallery");
});

test("Edit's picture, form and results survive a page change and a reload", async ({ page, request }) => {
  await editWithPicture(page, request);
  await page.locator("select[name=model]").selectOption("weightfree-blend");
  await page.locator("input[name=seed]").fill("99");
  const prompt = `kept edit ${Date.now()}`;
  await page.locator("textarea[name=prompt]").fill(prompt);
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await expect(page.locator(".results img.final")).toHaveCount(1, { timeout: 30_000 });

  const expectKept = async () => {
    await expect(page.locator("textarea[name=prompt]")).toHaveValue(prompt);
    await expect(page.locator("select[name=model]")).toHaveValue("weightfree-blend");
    await expect(page.locator("input[name=seed]")).toHaveValue("99");
    await expect(page.locator(".drop")).toContainText("256x256.");
    await expect(page.locator(".results img.final")).toHaveCount(1);
    await expect(page.locator(".results figcaption")).toContainText("seed 99");
  };
  // A mask painted after the edit comes back with the page.
  await paintStroke(page);
  const painted = () =>
    page.locator("canvas.mask").evaluate((c: HTMLCanvasElement) => {
      const data = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
      let opaque = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) opaque++;
      return opaque;
    });
  const before = await painted();
  expect(before).toBeGreaterThan(100);
  await page.getByRole("link", { name: "Chat" }).click();
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Edit" }).click();
  await expectKept();
  await expect(page.getByRole("button", { name: "Clear mask" })).toBeEnabled();
  await expect.poll(painted).toBe(before);
  await page.reload();
  await expectKept();
  await page.reload();
  await expectKept();
  // The kept picture is the local file itself, read back from this browser.
  const size = await page
    .locator("img.source")
    .evaluate((el: HTMLImageElement) => [el.src.slice(0, 5), el.naturalWidth]);
  expect(size).toEqual(["blob:", 256]);
});

test("prompts sent are offered again, newest first and once each, by keyboard", async ({ page }) => {
  await page.goto("/");
  await chooseModel(page, "weightfree-txt2img");
  await page.locator("select[name=size]").selectOption("256x256");
  const prompt = page.locator("textarea[name=prompt]");
  const history = page.locator("details.history");
  // Nothing sent yet: nothing offered.
  await expect(history).toBeHidden();
  for (const p of ["a red fox", "a blue bird", "a red fox"]) {
    await prompt.fill(p);
    await page.getByRole("button", { name: "Generate" }).click();
    await expect(page.locator(".results figcaption")).toContainText("Done", { timeout: 30_000 });
  }
  await expect(history.locator("button")).toHaveText(["a red fox", "a blue bird"]);

  // The history is shared with Edit and kept across a reload.
  await page.goto("/edit");
  await expect(page.locator("details.history button")).toHaveText(["a red fox", "a blue bird"]);
  await page.goto("/");

  await prompt.fill("");
  await prompt.focus();
  await page.keyboard.press("Tab");
  await expect(page.locator("details.history > summary")).toBeFocused();
  await page.keyboard.press("Enter");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  await expect(history.getByRole("button", { name: "a blue bird" })).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(prompt).toHaveValue("a blue bird");
  await expect(prompt).toBeFocused();
  await expect(history).not.toHaveAttribute("open", "");

  // Escape closes the list and leaves the focus on it.
  await page.locator("details.history > summary").focus();
  await page.keyboard.press("Enter");
  await expect(history).toHaveAttribute("open", "");
  await page.keyboard.press("Escape");
  await expect(history).not.toHaveAttribute("open", "");
  await expect(page.locator("details.history > summary")).toBeFocused();
});
