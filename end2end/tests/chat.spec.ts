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

/// A picture made by the bridge, as PNG bytes in base64.
async function pictureB64(page: Page): Promise<string> {
  const res = await page.request.post("/v1/images/generations", {
    data: { model: "weightfree-txt2img", prompt: "a stamp", size: "64x64" },
  });
  return (await res.json()).data[0].b64_json;
}

/// Sends a file to the page as a drop on `selector`, or as a paste.
async function handOver(page: Page, event: "drop" | "paste", selector: string, b64: string) {
  await page.evaluate(
    ({ event, selector, b64 }) => {
      const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([data], "clip.png", { type: "image/png" }));
      const target = document.querySelector(selector)!;
      if (event === "drop") {
        target.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
      } else {
        target.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }));
      }
    },
    { event, selector, b64 },
  );
}

test("the new reply is scrolled into view when it arrives", async ({ page }) => {
  await page.setViewportSize({ width: 1280, height: 700 });
  await openChat(page);
  await page.locator("select[name=model]").selectOption("sdxl");
  const message = page.locator("textarea[name=message]");
  const replies = page.locator(".turns > li.assistant");
  await message.fill("a tall tower");
  await message.press("Enter");
  await expect(replies.nth(0).locator("img.made")).toHaveCount(1, { timeout: 30_000 });

  await message.fill("a second tower");
  await message.press("Enter");
  // The reader looks elsewhere while it works; the reply comes to them when it is done.
  await expect(replies.nth(1)).toHaveAttribute("aria-busy", "true");
  await page.evaluate(() => window.scrollTo(0, 0));
  await expect(replies.nth(1).locator("img.made")).toHaveCount(1, { timeout: 30_000 });
  await expect(replies.nth(1)).toBeInViewport({ ratio: 0.5 });
  await expect(replies.nth(0)).not.toBeInViewport({ ratio: 0.5 });
});

test("an image pasted or dropped into the composer goes with the message", async ({ page }) => {
  await openChat(page);
  const b64 = await pictureB64(page);
  await handOver(page, "paste", "textarea[name=message]", b64);
  await expect(page.locator(".attachment img")).toBeVisible();
  await expect.poll(() => page.locator(".attachment img").evaluate((el: HTMLImageElement) => el.naturalWidth)).toBe(64);
  await page.getByRole("button", { name: "Remove" }).click();
  await expect(page.locator(".attachment")).toHaveCount(0);

  await handOver(page, "drop", "form.composer", b64);
  await expect(page.locator(".attachment img")).toBeVisible();
  await page.locator("textarea[name=message]").fill("the same in red");
  await page.getByRole("button", { name: "Send" }).click();
  const turns = page.locator(".turns > li");
  await expect(turns.nth(0).locator("img.attached")).toBeVisible();
  await expect(turns.nth(1).locator("img.made")).toHaveCount(1, { timeout: 30_000 });
  await expect(turns.nth(1).locator(".answer")).toContainText("Edited with");
});

test("the last reply can be regenerated, and chats renamed and searched", async ({ page }) => {
  await openChat(page);
  await page.locator("select[name=model]").selectOption("weightfree-txt2img");
  const message = page.locator("textarea[name=message]");
  const turns = page.locator(".turns > li");
  for (const text of ["a green kite", "a yellow kite"]) {
    await message.fill(text);
    await message.press("Enter");
    await expect(turns.last().locator("img.made")).toHaveCount(1, { timeout: 30_000 });
  }
  await expect(turns).toHaveCount(4);
  // Only the last reply offers it.
  await expect(page.getByRole("button", { name: "Regenerate" })).toHaveCount(1);
  const before = await turns.nth(3).locator(".answer").textContent();
  const earlier = await turns.nth(1).locator(".answer").textContent();
  await message.fill("a draft in the composer");
  await page.getByRole("button", { name: "Regenerate" }).click();
  // The same question, a new answer in the old one's place.
  await expect(turns).toHaveCount(4);
  await expect(turns.nth(2)).toHaveText("a yellow kite");
  await expect(turns.nth(3).locator("img.made")).toHaveCount(1, { timeout: 30_000 });
  await expect(page.getByRole("button", { name: "Regenerate" })).toBeVisible();
  await expect(turns.nth(3).locator(".answer")).not.toHaveText(before!);
  await expect(turns.nth(3).locator(".answer")).toContainText("Made with weightfree-txt2img");
  await expect(turns.nth(1).locator(".answer")).toHaveText(earlier!);
  await expect(message).toHaveValue("a draft in the composer");

  // Renamed by keyboard; the name stays as the chat goes on, and after a reload.
  const list = page.locator(".conversations");
  await list.getByRole("button", { name: "Rename" }).click();
  const name = page.getByRole("textbox", { name: "Chat name" });
  await expect(name).toBeFocused();
  await expect(name).toHaveValue("a green kite");
  await name.fill("Kites");
  await name.press("Enter");
  await expect(list.locator("button[aria-current=true]")).toHaveText("Kites");
  await message.fill("a red kite");
  await message.press("Enter");
  await expect(turns).toHaveCount(6);
  await expect(page.getByRole("button", { name: "Send" })).toBeEnabled({ timeout: 30_000 });
  await page.reload();
  await expect(list.locator("button[aria-current=true]")).toHaveText("Kites");
  // Escape leaves the name as it was.
  await list.getByRole("button", { name: "Rename" }).click();
  await page.getByRole("textbox", { name: "Chat name" }).fill("Nope");
  await page.keyboard.press("Escape");
  await expect(page.getByRole("textbox", { name: "Chat name" })).toBeHidden();
  await expect(list.locator("button[aria-current=true]")).toHaveText("Kites");

  // A second chat, then a search by what was said in the first.
  await page.getByRole("button", { name: "New chat" }).click();
  await message.fill("a blue boat");
  await message.press("Enter");
  await expect(page.getByRole("button", { name: "Send" })).toBeEnabled({ timeout: 30_000 });
  const chats = list.locator("li button");
  await expect(chats).toHaveText(["a blue boat", "Kites"]);
  const search = page.getByRole("searchbox", { name: "Search chats" });
  await search.fill("YELLOW kite");
  await expect(chats).toHaveText(["Kites"]);
  await search.fill("boat");
  await expect(chats).toHaveText(["a blue boat"]);
  await search.fill("submarine");
  await expect(chats).toHaveCount(0);
  await expect(list).toContainText("No chats match.");
});
