import { Page, expect, test } from "@playwright/test";

/// The Chat page, hydrated: its model list has arrived.
async function openChat(page: Page) {
  await page.goto("/chat");
  await expect(page.locator("select[name=model] option[value=weightfree-txt2img]")).toHaveCount(1);
}

test("a chat streams its progress apart from the answer, edits an image, and is kept", async ({ page }) => {
  const tag = `c${Date.now()}`;
  await openChat(page);
  await page.locator("select[name=model]").selectOption("sdxl");
  const message = page.locator("textarea[name=message]");
  await message.fill(`${tag} a lighthouse at dawn`);
  await message.press("Enter");

  const turns = page.locator(".turns > li");
  await expect(turns).toHaveCount(2);
  await expect(turns.nth(0)).toHaveText(`${tag} a lighthouse at dawn`);
  const reply = turns.nth(1);
  const made = reply.locator("img.made");
  await expect(made).toHaveCount(1, { timeout: 30_000 });
  await expect.poll(() => made.evaluate((el: HTMLImageElement) => el.naturalWidth)).toBeGreaterThan(0);
  // Its place is held at the reply's size, so nothing jumps while it loads.
  await expect(made).toHaveAttribute("width", "1024");
  await expect(made).toHaveAttribute("height", "1024");
  await expect(reply.locator(".answer")).toContainText("Made with sdxl");
  await expect(reply.locator(".answer code")).toHaveText("sdxl");
  // ComfyUI's progress is kept beside the answer, not in it.
  await expect(reply.locator("details.progress pre")).toContainText("Making 1 image with sdxl");
  await expect(reply.locator("details.progress pre")).toContainText(/Step \d+ of \d+/);
  await expect(reply.locator(".answer")).not.toContainText("Step");
  await expect(page.getByRole("button", { name: "Send" })).toBeEnabled();

  // Edit the image just made: it goes with the next message.
  await reply.getByRole("button", { name: "Edit this image" }).click();
  await expect(page.locator(".attachment img")).toBeVisible();
  await page.locator("select[name=model]").selectOption("");
  await message.fill("the same at night");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(turns).toHaveCount(4);
  await expect(turns.nth(2).locator("img.attached")).toBeVisible();
  await expect(turns.nth(3).locator("img.made")).toHaveCount(1, { timeout: 30_000 });
  await expect(turns.nth(3).locator(".answer")).toContainText("Edited with");
  await expect(page.locator(".attachment")).toHaveCount(0);

  // The conversation and its images are still there after a reload.
  await page.reload();
  await expect(page.locator(".conversations button[aria-current=true]")).toHaveText(`${tag} a lighthouse at dawn`);
  await expect(turns).toHaveCount(4);
  for (const img of await page.locator(".turns img").all()) {
    await expect.poll(() => img.evaluate((el: HTMLImageElement) => el.naturalWidth)).toBeGreaterThan(0);
  }
  await expect(turns.nth(1).locator("details.progress pre")).toContainText("Making 1 image");

  // A new chat starts empty; the old one is a click away.
  await page.getByRole("button", { name: "New chat" }).click();
  await expect(turns).toHaveCount(0);
  await page.locator(".conversations").getByRole("button", { name: `${tag} a lighthouse at dawn` }).click();
  await expect(turns).toHaveCount(4);

  page.once("dialog", (confirm) => confirm.accept());
  await page.getByRole("button", { name: "Delete this chat" }).click();
  await expect(turns).toHaveCount(0);
  await expect(page.locator(".conversations").getByRole("button", { name: `${tag} a lighthouse at dawn` })).toHaveCount(0);
});

test("a chat error is shown in the envelope's words, and user text stays text", async ({ page }) => {
  await openChat(page);
  // A text-to-image model given an image to edit: the bridge refuses, and says why.
  await page.locator("input[name=attach]").setInputFiles({
    name: "x.png",
    mimeType: "image/png",
    // A 1x1 PNG.
    buffer: Buffer.from(
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
      "base64",
    ),
  });
  await expect(page.locator(".attachment img")).toBeVisible();
  await page.locator("select[name=model]").selectOption("weightfree-txt2img");
  await page.locator("textarea[name=message]").fill("<b>bold</b> change");
  await page.getByRole("button", { name: "Send" }).click();
  const turns = page.locator(".turns > li");
  await expect(turns.nth(1).getByRole("alert")).not.toBeEmpty();
  await expect(turns.nth(0)).toContainText("<b>bold</b> change");
  await expect(page.locator(".turns b")).toHaveCount(0);
});
