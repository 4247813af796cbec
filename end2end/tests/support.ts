import { APIRequestContext, Locator, Page, expect } from "@playwright/test";

/// Picks a model on a page whose model list is filled in after hydration: waits for the option,
/// selects it, and gives back the select.
export async function chooseModel(page: Page, id: string): Promise<Locator> {
  const model = page.locator("select[name=model]");
  await expect(model.locator(`option[value=${id}]`)).toHaveCount(1);
  await model.selectOption(id);
  return model;
}

/// How many gallery images match `search`, through the gallery's server function.
export async function galleryTotal(request: APIRequestContext, search: string): Promise<number> {
  const res = await request.post("/api/gallery/list", {
    data: { query: { page: 0, per_page: 10, search, model: null }, api_key: "" },
  });
  return (await res.json()).total;
}

/// The Edit page with a 256x256 picture of the bridge's picked from a file, read by the page;
/// gives back the picture's bytes.
export async function editWithPicture(page: Page, request: APIRequestContext): Promise<Buffer> {
  const res = await request.post("/v1/images/generations", {
    data: { model: "weightfree-txt2img", prompt: "a card to edit", size: "256x256" },
  });
  const png = Buffer.from((await res.json()).data[0].b64_json, "base64");
  await page.goto("/edit");
  await expect(page.locator("select[name=model] option[value=weightfree-blend]")).toHaveCount(1);
  await page.locator("input[name=image]").setInputFiles({ name: "card.png", mimeType: "image/png", buffer: png });
  await expect(page.locator(".drop")).toContainText("256x256.");
  return png;
}

/// Paints a stroke across the middle of Edit's mask.
export async function paintStroke(page: Page) {
  const canvas = page.locator("canvas.mask");
  await canvas.scrollIntoViewIfNeeded();
  const box = (await canvas.boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.5, { steps: 8 });
  await page.mouse.up();
  await expect(page.getByRole("button", { name: "Clear mask" })).toBeEnabled();
}
