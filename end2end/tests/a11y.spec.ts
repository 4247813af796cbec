import { Page, expect, test } from "@playwright/test";
import { chooseModel, violations } from "./support";

/// Hydrated: the connection summary has been filled in.
async function ready(page: Page) {
  await expect(page.locator("details.connection summary")).not.toHaveText("Connecting…");
}

for (const scheme of ["dark", "light"] as const) {
  test(`no accessibility violations in the ${scheme} theme`, async ({ page, request }) => {
    await page.emulateMedia({ colorScheme: scheme });
    // The gallery has images, so its grid and pager are scanned too.
    const res = await request.post("/v1/images/generations", {
      data: { model: "weightfree-txt2img", prompt: `a11y ${scheme}`, size: "64x64" },
    });
    expect(res.ok()).toBeTruthy();

    for (const path of ["/", "/edit", "/chat", "/gallery"]) {
      await page.goto(path);
      await ready(page);
      if (path === "/gallery") await expect(page.locator(".gallery .grid img").first()).toBeVisible();
      expect(await violations(page), `${path} (${scheme})`).toEqual([]);
    }

    // Generate with its results, the viewer open over them, and the gallery's viewer.
    await page.goto("/");
    await chooseModel(page, "weightfree-txt2img");
    await page.locator("select[name=size]").selectOption("64x64");
    await page.locator("textarea[name=prompt]").fill("a kite");
    await page.getByRole("button", { name: "Generate" }).click();
    await expect(page.locator(".results img.final")).toBeVisible({ timeout: 30_000 });
    expect(await violations(page), `results (${scheme})`).toEqual([]);
    // The prompt just sent, offered again.
    await page.locator("details.history > summary").click();
    await expect(page.locator("details.history button")).toBeVisible();
    expect(await violations(page), `prompt history (${scheme})`).toEqual([]);
    // The API call, shown as copied.
    await page.getByRole("button", { name: "Copy as cURL" }).click();
    await expect(page.locator("pre.call-text")).toBeVisible();
    expect(await violations(page), `API call (${scheme})`).toEqual([]);
    await page.locator(".results button.open").click();
    await expect(page.getByRole("dialog", { name: "Result viewer" })).toBeVisible();
    expect(await violations(page), `result viewer (${scheme})`).toEqual([]);

    await page.goto("/gallery");
    await page.locator(".gallery .grid button").first().click();
    await expect(page.getByRole("dialog", { name: "Image details" })).toBeVisible();
    expect(await violations(page), `gallery viewer (${scheme})`).toEqual([]);

    // A chat with a reply to regenerate, its search and its rename form.
    await page.goto("/chat");
    await expect(page.locator("select[name=model] option[value=weightfree-txt2img]")).toHaveCount(1);
    await page.locator("select[name=model]").selectOption("weightfree-txt2img");
    await page.locator("textarea[name=message]").fill("a kite");
    await page.locator("textarea[name=message]").press("Enter");
    await expect(page.getByRole("button", { name: "Regenerate" })).toBeVisible({ timeout: 30_000 });
    await page.getByRole("searchbox", { name: "Search chats" }).fill("no such chat");
    await page.locator(".conversations").getByRole("button", { name: "Rename" }).click();
    await expect(page.getByRole("textbox", { name: "Chat name" })).toBeFocused();
    expect(await violations(page), `chat (${scheme})`).toEqual([]);
  });
}

test("the first Tab stop skips to the content", async ({ page }) => {
  await page.goto("/gallery");
  await ready(page);
  await page.keyboard.press("Tab");
  const skip = page.getByRole("link", { name: "Skip to content" });
  await expect(skip).toBeFocused();
  // Shown while it has the focus.
  const box = (await skip.boundingBox())!;
  expect(box.y).toBeGreaterThanOrEqual(0);
  await page.keyboard.press("Enter");
  await expect(page.locator("main")).toBeFocused();
  // The next Tab goes on from the content, past the header.
  await page.keyboard.press("Tab");
  expect(await page.evaluate(() => document.activeElement?.closest("main") != null)).toBe(true);
});

test("the two navigations have names of their own", async ({ page, request }) => {
  const res = await request.post("/v1/images/generations", {
    data: { model: "weightfree-txt2img", prompt: "landmarks", size: "64x64" },
  });
  expect(res.ok()).toBeTruthy();
  await page.goto("/gallery");
  await expect(page.getByRole("navigation", { name: "Main", exact: true })).toHaveCount(1);
  await expect(page.getByRole("navigation", { name: "Gallery pages", exact: true })).toHaveCount(1);
});

test("a generation's progress is told to screen readers by its changes, not its steps", async ({ page }) => {
  await page.goto("/");
  await chooseModel(page, "sdxl");
  await page.locator("select[name=size]").selectOption("512x512");
  await page.locator("select[name=n]").selectOption("2");
  await page.locator("summary", { hasText: "Advanced" }).click();
  await page.locator("input[name=steps]").fill("8");
  await page.locator("textarea[name=prompt]").fill("a bell");
  const live = page.locator("section.card p[aria-live=polite].visually-hidden");
  await expect(live).toHaveCount(1);
  await live.evaluate((el) => {
    const told: string[] = [];
    (window as any).told = told;
    new MutationObserver(() => {
      if (el.textContent) told.push(el.textContent);
    }).observe(el, { subtree: true, childList: true, characterData: true });
  });
  await page.getByRole("button", { name: "Generate" }).click();
  await expect(live).toHaveText("Finished: 2 images.", { timeout: 30_000 });
  const told: string[] = await page.evaluate(() => (window as any).told);
  expect(told.filter((t) => /Step/.test(t))).toEqual([]);
  expect(told).toContain("Started.");
  expect(told).toContain("Image 2 of 2 done.");
  expect(told.length).toBeLessThanOrEqual(6);
});
