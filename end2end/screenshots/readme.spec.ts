import { resolve } from "node:path";
import { Page, expect, test } from "@playwright/test";
import { chooseModel, editWithPicture, generateBatch, paintStroke } from "../tests/support";

const out = (name: string) => resolve(__dirname, "..", "..", "docs", "screenshots", `${name}.png`);

/// The page from its top, as a visitor first sees it.
async function shoot(page: Page, name: string) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: out(name) });
}

/// Starts Generate on sdxl with `n` images of `steps` steps.
async function generate(page: Page, prompt: string, n: number, steps: number) {
  await page.goto("/");
  await generateBatch(page, prompt, n, steps);
}

test("generate: the studio, results beside the form", async ({ page }) => {
  await generate(page, "a lighthouse on a rocky coast at dawn, oil painting", 4, 6);
  await expect(page.locator(".results img.final")).toHaveCount(4, { timeout: 60_000 });
  await page.locator("summary", { hasText: "Advanced" }).click();
  await shoot(page, "generate");
});

test("generate mid-run: images as they are done, and the jobs panel", async ({ page }) => {
  await generate(page, "paper boats on a pond, watercolour", 4, 12);
  await expect(page.locator(".results img.final")).toHaveCount(2, { timeout: 60_000 });
  await shoot(page, "jobs");
  await page.getByRole("button", { name: "Cancel", exact: true }).click();
});

test("viewer", async ({ page }) => {
  await generate(page, "a red fox in the snow", 2, 4);
  await expect(page.locator(".results img.final")).toHaveCount(2, { timeout: 60_000 });
  await page.locator(".results img.final").first().click();
  await expect(page.getByRole("dialog")).toBeVisible();
  await shoot(page, "viewer");
});

test("edit", async ({ page, request }) => {
  await editWithPicture(page, request);
  await paintStroke(page);
  await page.locator("textarea[name=prompt]").fill("a round window");
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await expect(page.locator(".results img.final").first()).toBeVisible({ timeout: 60_000 });
  await shoot(page, "edit");
});

test("chat", async ({ page }) => {
  await page.goto("/chat");
  await chooseModel(page, "sdxl");
  const message = page.locator("textarea[name=message]");
  await message.fill("a cabin in a pine forest");
  await message.press("Enter");
  await expect(page.locator(".turns img.made")).toHaveCount(1, { timeout: 60_000 });
  await page.screenshot({ path: out("chat"), fullPage: true });
});

test("gallery and an image's details", async ({ page }) => {
  await page.goto("/gallery");
  await expect(page.locator(".gallery .grid img").first()).toBeVisible({ timeout: 30_000 });
  await shoot(page, "gallery");
  await page.locator(".gallery .grid img").first().click();
  await expect(page.getByRole("dialog")).toBeVisible();
  await shoot(page, "gallery-details");
});
