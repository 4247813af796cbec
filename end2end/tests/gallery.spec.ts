import { expect, test } from "@playwright/test";
import { galleryTotal } from "./support";

test("the gallery keeps what was made: search, details, delete, and after a reload", async ({ page, request }) => {
  // Other tests share this server's gallery; a tag keeps this test's images apart.
  const tag = `t${Date.now()}`;
  for (const [prompt, seed] of [[`${tag} red fox`, 7], [`${tag} blue whale`, 8]]) {
    const res = await request.post("/v1/images/generations", {
      data: { model: "weightfree-txt2img", prompt, size: "64x64", seed },
    });
    expect(res.ok()).toBeTruthy();
  }
  // Images are written to the gallery in the background.
  await expect.poll(() => galleryTotal(request, tag)).toBe(2);

  await page.goto("/");
  await page.getByRole("link", { name: "Gallery" }).click();
  await expect(page).toHaveURL(/\/gallery$/);
  await page.locator("input[name=search]").fill(tag);
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page.locator(".gallery .count")).toHaveText("2 images");
  const thumbs = page.locator(".gallery .grid img");
  await expect(thumbs).toHaveCount(2);
  await expect(thumbs.first()).toHaveAttribute("alt", `${tag} blue whale`);

  await page.locator("input[name=search]").fill(`${tag} whale`);
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page.locator(".gallery .count")).toHaveText("1 image");
  // A search without hits says so, rather than that the gallery is empty.
  await page.locator("input[name=search]").fill(`${tag} unicorn`);
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page.getByText("No images match this search.")).toBeVisible();

  await page.locator("input[name=search]").fill(tag);
  await page.getByRole("button", { name: "Search" }).click();
  await expect(thumbs).toHaveCount(2);
  await thumbs.first().click();
  const dialog = page.getByRole("dialog", { name: "Image details" });
  await expect(dialog).toBeVisible();
  await expect(dialog.locator(".prompt")).toHaveText(`${tag} blue whale`);
  await expect(dialog.locator(".seed")).toHaveText("8");
  await expect(dialog).toContainText("weightfree-txt2img");
  await expect(dialog).toContainText("64x64");
  const full = dialog.locator("img");
  await expect.poll(() => full.evaluate((el: HTMLImageElement) => el.naturalWidth)).toBe(64);

  page.once("dialog", (confirm) => confirm.accept());
  await dialog.getByRole("button", { name: "Delete" }).click();
  await expect(dialog).toHaveCount(0);
  await expect(page.locator(".gallery .count")).toHaveText("1 image");

  await page.reload();
  await page.locator("input[name=search]").fill(tag);
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page.locator(".gallery .count")).toHaveText("1 image");
  await expect(thumbs.first()).toHaveAttribute("alt", `${tag} red fox`);
});

test("closing the details keeps the image, and Escape closes them too", async ({ page, request }) => {
  const tag = `k${Date.now()}`;
  const res = await request.post("/v1/images/generations", {
    data: { model: "weightfree-txt2img", prompt: `${tag} <b>bold</b>`, size: "64x64" },
  });
  expect(res.ok()).toBeTruthy();
  await expect.poll(() => galleryTotal(request, tag)).toBe(1);
  // A search is an address too (the form works before the page is hydrated).
  await page.goto(`/gallery?search=${tag}`);
  await expect(page.locator("input[name=search]")).toHaveValue(tag);
  await expect(page.locator(".gallery .count")).toHaveText("1 image");
  await page.locator(".gallery .grid button").first().click();
  const dialog = page.getByRole("dialog", { name: "Image details" });
  // The prompt is shown as text, never as markup.
  await expect(dialog.locator(".prompt")).toHaveText(`${tag} <b>bold</b>`);
  await expect(dialog.locator("b")).toHaveCount(0);
  await dialog.getByRole("button", { name: "Close" }).click();
  await expect(dialog).toHaveCount(0);
  await page.locator(".gallery .grid button").first().click();
  await dialog.focus();
  await page.keyboard.press("Escape");
  await expect(dialog).toHaveCount(0);
  await expect(page.locator(".gallery .count")).toHaveText("1 image");
});

test("use settings makes the same image again", async ({ page, request }) => {
  const tag = `s${Date.now()}`;
  const prompt = `${tag} a fox & a hen, 100%`;
  const res = await request.post("/v1/images/generations", {
    data: { model: "weightfree-txt2img", prompt, size: "256x256", seed: 12345 },
  });
  expect(res.ok()).toBeTruthy();
  const original = (await res.json()).data[0].b64_json;
  await expect.poll(() => galleryTotal(request, tag)).toBe(1);

  await page.goto("/gallery");
  await page.locator("input[name=search]").fill(tag);
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator(".gallery .grid button").first().click();
  await page.getByRole("dialog", { name: "Image details" }).getByRole("link", { name: "Use settings" }).click();

  await expect(page).toHaveURL(/\/\?prompt=/);
  await expect(page.locator("textarea[name=prompt]")).toHaveValue(prompt);
  await expect(page.locator("input[name=seed]")).toHaveValue("12345");
  await expect(page.locator("select[name=size]")).toHaveValue("256x256");
  await expect(page.locator("select[name=model]")).toHaveValue("weightfree-txt2img");
  await page.getByRole("button", { name: "Generate" }).click();
  await expect(page.locator(".results figcaption")).toContainText("Done · seed 12345", { timeout: 30_000 });
  await expect(page.locator(".results img.final")).toHaveAttribute("src", `data:image/png;base64,${original}`);
});

test("the gallery pages through 24 images at a time, and filters by model", async ({ page, request }) => {
  const tag = `pg${Date.now()}`;
  // 26 small images, four per request, and one of another model.
  for (let made = 0; made < 26; made += 4) {
    const res = await request.post("/v1/images/generations", {
      data: { model: "weightfree-txt2img", prompt: `${tag} pebble`, size: "64x64", n: Math.min(4, 26 - made) },
    });
    expect(res.ok()).toBeTruthy();
  }
  const other = await request.post("/v1/images/generations", {
    data: { model: "sdxl", prompt: `${tag} pebble`, size: "512x512", steps: 2 },
  });
  expect(other.ok()).toBeTruthy();
  // Thumbnails are made one at a time, after the replies.
  await expect.poll(() => galleryTotal(request, tag), { timeout: 30_000 }).toBe(27);

  await page.goto(`/gallery?search=${tag}`);
  await expect(page.locator(".gallery .count")).toHaveText("27 images");
  const thumbs = page.locator(".gallery .grid img");
  await expect(thumbs).toHaveCount(24);
  const pager = page.getByRole("navigation", { name: "Gallery pages" });
  await expect(pager).toContainText("Page 1 of 2");
  await expect(pager.getByRole("button", { name: "Previous" })).toBeDisabled();
  await pager.getByRole("button", { name: "Next" }).click();
  await expect(pager).toContainText("Page 2 of 2");
  await expect(thumbs).toHaveCount(3);
  await expect(pager.getByRole("button", { name: "Next" })).toBeDisabled();
  await pager.getByRole("button", { name: "Previous" }).click();
  await expect(thumbs).toHaveCount(24);

  await page.locator(".gallery select[name=model]").selectOption("sdxl");
  await expect(page.locator(".gallery .count")).toHaveText("1 image");
  await expect(thumbs).toHaveCount(1);
});
