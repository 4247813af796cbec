import { Page, expect, test } from "@playwright/test";
import { chooseModel } from "./support";

/// Starts a 200-step generation from the Generate page: long enough to watch and to cancel.
async function startLongJob(page: Page) {
  await chooseModel(page, "sdxl");
  await page.locator("select[name=size]").selectOption("512x512");
  await page.locator("summary", { hasText: "Advanced" }).click();
  await page.locator("input[name=steps]").fill("200");
  await page.locator("textarea[name=prompt]").fill("a very long job");
  await page.getByRole("button", { name: "Generate" }).click();
}

test("sizes are the chosen model's, grouped and labelled", async ({ page }) => {
  await page.goto("/");
  const model = await chooseModel(page, "sdxl");
  const size = page.locator("select[name=size]");
  await expect(size.locator("optgroup")).toHaveCount(3);
  await expect(size.locator("optgroup[label='Small (fast)'] option").first()).toHaveText("512x512 (square)");
  await expect(size.locator("option[value='1344x768']")).toHaveText("1344x768 (landscape 7:4)");
  await size.selectOption("1344x768");
  // A size the next model does not offer falls back to that model's default.
  await model.selectOption("weightfree-txt2img");
  await expect(size).toHaveValue("auto");
  await expect(size.locator("option[value=auto]")).toHaveText("Model default (512x512)");
});

test("the home page shows the demo backend and generates an image", async ({ page }) => {
  await page.goto("/");
  await expect(page.getByRole("heading", { name: "ComfyUI API Bridge" })).toBeVisible();
  await expect(page.getByRole("status")).toContainText("Demo backend");

  // The model list arrives from /v1/models after hydration.
  await chooseModel(page, "weightfree-txt2img");
  await page.locator("select[name=size]").selectOption("256x256");
  await page.locator("textarea[name=prompt]").fill("a <b>bold</b> fox");
  await page.getByRole("button", { name: "Generate" }).click();

  const img = page.locator(".results img.final");
  await expect(img).toBeVisible({ timeout: 30_000 });
  await expect(img).toHaveAttribute("alt", "a <b>bold</b> fox");
  const size = await img.evaluate((el: HTMLImageElement) => [el.naturalWidth, el.naturalHeight]);
  expect(size).toEqual([256, 256]);
  await expect(page.locator(".results figcaption")).toContainText(/Done · seed \d+/);
  // The seed can go back into the form, to make the same image again.
  const seed = (await page.locator(".results figcaption").textContent())!.match(/seed (\d+)/)![1];
  await page.getByRole("button", { name: "Reuse seed" }).click();
  await expect(page.locator("input[name=seed]")).toHaveValue(seed);
  // The prompt is text, never markup.
  await expect(page.locator(".results b")).toHaveCount(0);
});

test("each image shows its progress and previews while it is made", async ({ page }) => {
  await page.goto("/");
  await chooseModel(page, "sdxl");
  await page.locator("select[name=size]").selectOption("512x512");
  await page.locator("select[name=n]").selectOption("2");
  await page.locator("summary", { hasText: "Advanced" }).click();
  await page.locator("input[name=steps]").fill("12");
  await page.locator("textarea[name=prompt]").fill("a castle");

  // Everything the results area shows on the way, however briefly.
  await page.evaluate(() => {
    const seen = { statuses: new Set<string>(), previews: 0 };
    (window as any).seen = seen;
    new MutationObserver(() => {
      document.querySelectorAll(".results .status").forEach((s) => seen.statuses.add(s.textContent ?? ""));
      seen.previews = Math.max(seen.previews, document.querySelectorAll(".results img.preview").length);
    }).observe(document.querySelector(".results")!, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await page.getByRole("button", { name: "Generate" }).click();
  await expect(page.locator(".results img.final")).toHaveCount(2, { timeout: 30_000 });

  const seen = await page.evaluate(() => {
    const s = (window as any).seen;
    return { statuses: [...s.statuses], previews: s.previews };
  });
  expect(seen.statuses.filter((s: string) => /^Step \d+ of 12$/.test(s)).length).toBeGreaterThan(1);
  expect(seen.previews).toBeGreaterThan(0);
  for (const img of await page.locator(".results img.final").all()) {
    expect(await img.evaluate((el: HTMLImageElement) => el.naturalWidth)).toBe(512);
  }
  await expect(page.locator(".results progress").first()).toHaveAttribute("value", "12");
});

test("cancel stops the job in ComfyUI", async ({ page, request }) => {
  await page.goto("/");
  await startLongJob(page);

  await expect(page.locator(".results .status")).toContainText(/Step \d+ of 200/, { timeout: 15_000 });
  await page.getByRole("button", { name: "Cancel", exact: true }).click();
  await expect(page.locator(".results .status")).toHaveText("Cancelled");
  await expect(page.getByRole("button", { name: "Generate" })).toBeEnabled();
  await expect(page.locator(".results img.final")).toHaveCount(0);

  // The bridge saw the client go and cancelled the prompt: ComfyUI's queue empties long before
  // the 200 steps would have run.
  await expect
    .poll(async () => (await (await request.get("/health")).json()).servers[0].queue_remaining, { timeout: 3_000 })
    .toBe(0);
});

test("errors are shown in the envelope's words", async ({ page }) => {
  await page.goto("/");
  await chooseModel(page, "weightfree-txt2img");
  // The server refuses an over-long prompt, and the page shows its words.
  await page.locator("textarea[name=prompt]").fill("x".repeat(32_001));
  await page.getByRole("button", { name: "Generate" }).click();
  await expect(page.getByRole("alert")).toContainText(
    "'prompt' is too long: 32001 characters, at most 32000.",
  );
});

test("the connection panel shows each server and its queue, kept fresh", async ({ page }) => {
  await page.goto("/");
  const panel = page.locator("details.connection");
  await expect(panel.locator("summary")).toHaveText("ComfyUI ok · queue 0");
  await panel.locator("summary").click();
  await expect(panel.locator(".servers li")).toContainText("reachable");
  await expect(panel).toContainText("Models: ");
  await expect(panel).toContainText("weightfree-txt2img");
  // No key is needed on this server, so none is asked for.
  await expect(panel.locator("input[name=api_key]")).toHaveCount(0);

  // A long job shows in the queue without a reload.
  await startLongJob(page);
  await expect(panel.locator("summary")).toHaveText("ComfyUI ok · queue 1", { timeout: 12_000 });
  await expect(panel.locator(".servers li")).toContainText("1 in queue");
  await page.getByRole("button", { name: "Cancel", exact: true }).click();
  await expect(panel.locator("summary")).toHaveText("ComfyUI ok · queue 0", { timeout: 12_000 });
});

test("the form offers only the fields the chosen model takes", async ({ page }) => {
  await page.goto("/");
  const negative = page.locator("input[name=negative_prompt]");
  await chooseModel(page, "sdxl");
  await page.locator("summary", { hasText: "Advanced" }).click();
  await expect(negative).toBeVisible();
  await expect(page.locator("input[name=steps]")).toHaveAttribute("placeholder", "model default (25)");
  const sampler = page.locator("select[name=sampler]");
  await expect(sampler.locator("option").first()).toHaveText("model default (euler)");
  await sampler.selectOption("dpmpp_2m");

  // Z-Image-Turbo has no negative prompt; the weight-free model takes no sampler settings.
  await chooseModel(page, "z-image-turbo");
  await expect(negative).toHaveCount(0);
  await expect(page.locator("input[name=steps]")).toHaveAttribute("placeholder", "model default (9)");
  await chooseModel(page, "weightfree-txt2img");
  await expect(page.locator("input[name=steps]")).toHaveCount(0);
  await expect(sampler).toHaveCount(0);
  await expect(page.getByText("This model takes no other settings.")).toBeVisible();

  // What another model's fields hold is not sent to this one: the request succeeds.
  await page.locator("select[name=size]").selectOption("64x64");
  await page.locator("textarea[name=prompt]").fill("a plain square");
  await page.getByRole("button", { name: "Generate" }).click();
  await expect(page.locator(".results img.final")).toBeVisible({ timeout: 30_000 });
});

test("an image's settings come back into the form when it is dropped", async ({ page }) => {
  await page.goto("/");
  await chooseModel(page, "sdxl");
  await page.locator("select[name=size]").selectOption("512x512");
  await page.locator("textarea[name=prompt]").fill("a lighthouse, at dusk");
  await page.locator("input[name=negative_prompt]").fill("fog");
  await page.locator("input[name=seed]").fill("4242");
  await page.locator("summary", { hasText: "Advanced" }).click();
  await page.locator("input[name=steps]").fill("3");
  await page.locator("select[name=sampler]").selectOption("dpmpp_2m");
  await page.getByRole("button", { name: "Generate" }).click();
  const img = page.locator(".results img.final");
  await expect(img).toBeVisible({ timeout: 30_000 });
  const src = (await img.getAttribute("src"))!;
  const bytes = await page.evaluate(
    async (src) => Array.from(new Uint8Array(await (await fetch(src)).arrayBuffer())),
    src,
  );

  // A fresh form, and the image dropped onto it.
  await page.goto("/");
  await expect(page.locator("select[name=model] option[value=sdxl]")).toHaveCount(1);
  const drop = async (data: number[], name: string) => {
    const dataTransfer = await page.evaluateHandle(
      ([data, name]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(data as number[])], name as string, { type: "image/png" }));
        return dt;
      },
      [data, name],
    );
    await page.locator("form.generate").dispatchEvent("drop", { dataTransfer });
  };
  await drop(bytes, "made.png");
  await expect(page.locator("form .notice")).toHaveText("Settings read from made.png.");
  await expect(page.locator("textarea[name=prompt]")).toHaveValue("a lighthouse, at dusk");
  await expect(page.locator("input[name=negative_prompt]")).toHaveValue("fog");
  await expect(page.locator("select[name=model]")).toHaveValue("sdxl");
  await expect(page.locator("select[name=size]")).toHaveValue("512x512");
  await expect(page.locator("input[name=seed]")).toHaveValue("4242");
  await page.locator("summary", { hasText: "Advanced" }).click();
  await expect(page.locator("input[name=steps]")).toHaveValue("3");
  await expect(page.locator("select[name=sampler]")).toHaveValue("dpmpp_2m");

  await drop([71, 73, 70, 56, 57, 97], "notes.gif");
  await expect(page.locator("form .notice")).toContainText("notes.gif carries no settings");
});
