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
