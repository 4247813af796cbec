import { APIRequestContext, Page, expect, test } from "@playwright/test";
import { chooseModel, paintStroke } from "./support";

/// A picture made by the bridge itself, as PNG bytes.
async function picture(request: APIRequestContext, size: string, prompt = "a test card"): Promise<Buffer> {
  const res = await request.post("/v1/images/generations", {
    data: { model: "weightfree-txt2img", prompt, size, response_format: "b64_json" },
  });
  expect(res.ok()).toBeTruthy();
  return Buffer.from((await res.json()).data[0].b64_json, "base64");
}

/// The model the gallery says made the images whose prompt has `tag`, newest first.
async function galleryModels(request: APIRequestContext, tag: string): Promise<string[]> {
  const res = await request.post("/api/gallery/list", {
    data: { query: { page: 0, per_page: 10, search: tag, model: null }, api_key: "" },
  });
  return (await res.json()).items.map((i: { model: string }) => i.model);
}

/// The Edit page, hydrated: its model list has arrived.
async function openEdit(page: Page) {
  await page.goto("/edit");
  await expect(page.locator("select[name=model] option[value=weightfree-inpaint]")).toHaveCount(1);
}

/// The Edit page with a 256x256 picture picked from a file, read by the page.
async function openWithPicture(page: Page, request: APIRequestContext) {
  await openEdit(page);
  await page.locator("input[name=image]").setInputFiles({
    name: "photo.png",
    mimeType: "image/png",
    buffer: await picture(request, "256x256"),
  });
  await expect(page.locator(".drop")).toContainText("256x256.");
}

test("edit an uploaded image with a painted mask", async ({ page, request }) => {
  const tag = `e${Date.now()}`;
  await openWithPicture(page, request);

  await paintStroke(page);

  await page.locator("textarea[name=prompt]").fill(`${tag} a red hat`);
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await expect(page.locator(".results img.final")).toBeVisible({ timeout: 30_000 });
  await expect(page.locator(".results figcaption")).toContainText(/Done · seed \d+/);
  // With a mask, "Automatic" chose an inpainting model: the gallery says which.
  await expect.poll(() => galleryModels(request, tag)).toEqual([expect.stringContaining("inpaint")]);
});

test("a dropped or pasted image is edited as a whole without a mask", async ({ page, request }) => {
  const tag = `p${Date.now()}`;
  await openEdit(page);
  const send = async (event: "drop" | "paste", bytes: Buffer) =>
    page.evaluate(
      ({ event, b64 }) => {
        const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([data], "clip.png", { type: "image/png" }));
        if (event === "drop") {
          const target = document.querySelector(".drop")!;
          target.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        } else {
          document.body.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }));
        }
      },
      { event, b64: bytes.toString("base64") },
    );
  await send("drop", await picture(request, "64x64"));
  await expect(page.locator(".drop")).toContainText("64x64.");
  await send("paste", await picture(request, "256x256"));
  await expect(page.locator(".drop")).toContainText("256x256.");
  await expect(page.getByRole("button", { name: "Clear mask" })).toBeDisabled();

  await page.locator("textarea[name=prompt]").fill(`${tag} in watercolour`);
  await page.locator("input[name=strength]").fill("0.6");
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await expect(page.locator(".results img.final")).toBeVisible({ timeout: 30_000 });
  await expect.poll(() => galleryModels(request, tag)).toEqual([expect.not.stringContaining("inpaint")]);
});

test("a gallery image opens in Edit", async ({ page, request }) => {
  const tag = `g${Date.now()}`;
  await picture(request, "64x64", `${tag} a lighthouse`);
  await expect.poll(() => galleryModels(request, tag)).toHaveLength(1);

  await page.goto(`/gallery?search=${tag}`);
  await page.locator(".gallery .grid img").first().click();
  await page.getByRole("dialog", { name: "Image details" }).getByRole("link", { name: "Send to Edit" }).click();
  await expect(page).toHaveURL(/\/edit\?image=%2Fgallery%2F/);
  await expect(page.locator(".drop")).toContainText("64x64.");
  await expect(page.locator("textarea[name=prompt]")).toHaveValue(`${tag} a lighthouse`);
  await chooseModel(page, "weightfree-img2img");
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await expect(page.locator(".results img.final")).toBeVisible({ timeout: 30_000 });
  await expect.poll(() => galleryModels(request, tag)).toEqual(["weightfree-img2img", "weightfree-txt2img"]);
});

test("editing with no image says what is missing", async ({ page }) => {
  await openEdit(page);
  await page.locator("textarea[name=prompt]").fill("anything");
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await expect(page.getByRole("alert")).toHaveText("Drop, paste or pick an image to edit first.");
});

test("an uploaded mask file is used instead of painting", async ({ page, request }) => {
  const tag = `m${Date.now()}`;
  await openWithPicture(page, request);
  // A mask as OpenAI describes it: opaque, with a transparent square where the image may change.
  const mask = await page.evaluate(() => {
    const c = document.createElement("canvas");
    c.width = c.height = 256;
    const ctx = c.getContext("2d")!;
    ctx.fillRect(0, 0, 256, 256);
    ctx.clearRect(64, 64, 128, 128);
    return c.toDataURL("image/png").split(",")[1];
  });
  await page.locator("input[name=mask]").setInputFiles({
    name: "mask.png",
    mimeType: "image/png",
    buffer: Buffer.from(mask, "base64"),
  });
  await expect(page.locator(".mask-tools")).toContainText("The mask file is used instead of the painting.");
  await page.locator("textarea[name=prompt]").fill(`${tag} a window`);
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await expect(page.locator(".results img.final")).toBeVisible({ timeout: 30_000 });
  await expect.poll(() => galleryModels(request, tag)).toEqual([expect.stringContaining("inpaint")]);
});

test("a file that is not an image is refused at once, and says why", async ({ page, request }) => {
  await openEdit(page);
  await page.locator("input[name=image]").setInputFiles({
    name: "notes.txt",
    mimeType: "text/plain",
    buffer: Buffer.from("not a picture"),
  });
  await expect(page.getByRole("alert")).toHaveText("notes.txt is not an image. Choose a PNG, JPEG or WebP file.");
  await expect(page.locator(".drop")).not.toContainText("Reading the image");

  // One that calls itself an image but is none.
  await page.locator("input[name=image]").setInputFiles({
    name: "fake.png",
    mimeType: "image/png",
    buffer: Buffer.from("not a picture either"),
  });
  await expect(page.getByRole("alert")).toHaveText(
    "That file could not be read as an image. Choose a PNG, JPEG or WebP file.",
  );
  await expect(page.locator(".drop")).not.toContainText("Reading the image");
  await expect(page.locator("img.source")).toBeHidden();

  // A real picture afterwards clears the error.
  await page.locator("input[name=image]").setInputFiles({
    name: "photo.png",
    mimeType: "image/png",
    buffer: await picture(request, "64x64"),
  });
  await expect(page.locator(".drop")).toContainText("64x64.");
  await expect(page.getByRole("alert")).toHaveCount(0);
});
