import { Locator, Page, expect } from "@playwright/test";

/// Picks a model on a page whose model list is filled in after hydration: waits for the option,
/// selects it, and gives back the select.
export async function chooseModel(page: Page, id: string): Promise<Locator> {
  const model = page.locator("select[name=model]");
  await expect(model.locator(`option[value=${id}]`)).toHaveCount(1);
  await model.selectOption(id);
  return model;
}
