import { expect, test } from "@playwright/test";

test("the home page shows the demo backend and generates an image", async ({ page }) => {
  await page.goto("/");
  await expect(page.getByRole("heading", { name: "ComfyUI API Bridge" })).toBeVisible();
  await expect(page.getByRole("status")).toContainText("Demo backend");
  await expect(page.getByText("Status: ok")).toBeVisible();

  // The model list arrives from /v1/models after hydration.
  const model = page.locator("select[name=model]");
  await expect(model.locator("option[value=weightfree-txt2img]")).toHaveCount(1);
  await model.selectOption("weightfree-txt2img");
  await page.locator("input[name=size]").fill("256x256");
  await page.locator("textarea[name=prompt]").fill("a <b>bold</b> fox");
  await page.getByRole("button", { name: "Generate" }).click();

  const img = page.locator(".results img");
  await expect(img).toBeVisible({ timeout: 30_000 });
  await expect(img).toHaveAttribute("alt", "a <b>bold</b> fox");
  const size = await img.evaluate((el: HTMLImageElement) => [el.naturalWidth, el.naturalHeight]);
  expect(size).toEqual([256, 256]);
  // The prompt is text, never markup.
  await expect(page.locator(".results b")).toHaveCount(0);
});

test("errors are shown in the envelope's words", async ({ page }) => {
  await page.goto("/");
  const model = page.locator("select[name=model]");
  await expect(model.locator("option[value=weightfree-txt2img]")).toHaveCount(1);
  await model.selectOption("weightfree-txt2img");
  await page.locator("input[name=size]").fill("999x999");
  await page.locator("textarea[name=prompt]").fill("x");
  await page.getByRole("button", { name: "Generate" }).click();
  await expect(page.getByRole("alert")).toContainText("Invalid value for 'size': '999x999'");
});
