import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Page, expect, test } from "@playwright/test";
import { chooseModel, editWithPicture, paintStroke } from "./support";

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/// Runs a copied command in bash, in `dir`, with the key variable the command reads.
function run(command: string, dir: string): string {
  return execFileSync("bash", ["-c", command], {
    cwd: dir,
    env: { ...process.env, OPENAI_API_KEY: "" },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 64 * 1024 * 1024,
  });
}

/// A file's SHA-256, to compare images by: a failed comparison of two whole images would
/// format a diff of every byte.
function digest(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/// The images of an API answer, decoded.
function images(answer: string): Buffer[] {
  return JSON.parse(answer).data.map((d: { b64_json: string }) => Buffer.from(d.b64_json, "base64"));
}

/// Clicks a copy button and gives back what landed on the clipboard, which the page shows too.
async function copied(page: Page, button: string): Promise<string> {
  await page.getByRole("button", { name: button }).click();
  await expect(page.locator(".call [aria-live]")).toHaveText(/Copied/);
  const text = await page.evaluate(() => navigator.clipboard.readText());
  await expect(page.locator("pre.call-text")).toHaveText(text);
  return text;
}

test.beforeEach(async ({ context, baseURL }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseURL });
});

test("Copy as cURL on Generate gives a command that makes the image", async ({ page, baseURL }) => {
  await page.goto("/");
  await chooseModel(page, "sdxl");
  await page.locator("select[name=size]").selectOption("512x512");
  await page.locator("select[name=n]").selectOption("2");
  await page.locator("input[name=seed]").fill("77");
  await page.locator("summary", { hasText: "Advanced" }).click();
  await page.locator("input[name=steps]").fill("4");
  await page.locator("textarea[name=prompt]").fill("a fox's den, \"at dusk\"");

  const command = await copied(page, "Copy as cURL");
  // The page's own address, the placeholder for the key, never a key in clear.
  expect(command).toContain(`${baseURL}/v1/images/generations`);
  expect(command).toContain("$OPENAI_API_KEY");
  const answer = run(command, mkdtempSync(join(tmpdir(), "curl-")));
  const made = images(answer);
  expect(made.length).toBe(2);
  for (const png of made) expect(png.subarray(0, 8)).toEqual(PNG);
  expect(JSON.parse(answer).data.map((d: { seed: number }) => d.seed)).toEqual([77, 78]);

  // The same settings through the page make the same first image. Each image shows when it is
  // done, so the second may be there before the first: look in the first image's own place.
  await page.getByRole("button", { name: "Generate" }).click();
  const first = page.locator(".results figure.slot").first().locator("img.final");
  await expect(first).toBeVisible({ timeout: 30_000 });
  const src = await first.getAttribute("src");
  expect(digest(Buffer.from(src!.split(",")[1], "base64")), "the page's first image is the command's").toBe(
    digest(made[0]),
  );
});

/// Runs copied Python with the official SDK (scripts/test provides it as SDK_PYTHON) in `dir`.
function python(code: string, dir: string) {
  execFileSync(process.env.SDK_PYTHON!, ["-c", code], {
    cwd: dir,
    env: { ...process.env, OPENAI_API_KEY: "unused" },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

test("Copy as Python on Generate calls the OpenAI SDK with the bridge's own settings aside", async ({ page, baseURL }) => {
  await page.goto("/");
  await chooseModel(page, "weightfree-txt2img");
  await page.locator("select[name=size]").selectOption("64x64");
  await page.locator("input[name=seed]").fill("5");
  await page.locator("textarea[name=prompt]").fill("a quiet harbour");
  const code = await copied(page, "Copy as Python");
  expect(code).toContain(`client = OpenAI(base_url="${baseURL}/v1")`);
  expect(code).toContain("client.images.generate(");
  expect(code).toContain('model="weightfree-txt2img"');
  expect(code).toContain('extra_body={"seed": 5}');
  expect(code).not.toContain("stream");
  if (!process.env.SDK_PYTHON) return;
  const dir = mkdtempSync(join(tmpdir(), "python-"));
  python(code, dir);
  expect(readFileSync(join(dir, "image-0.png")).subarray(0, 8)).toEqual(PNG);
});

test("Copy as cURL on Edit sends the picture as a file", async ({ page, request }) => {
  const png = await editWithPicture(page, request);
  await page.locator("select[name=model]").selectOption("weightfree-blend");
  await page.locator("input[name=seed]").fill("3");
  await page.locator("textarea[name=prompt]").fill("@a card, in blue");

  const command = await copied(page, "Copy as cURL");
  expect(command).toContain("-F image=@image.png");
  expect(command).not.toContain("mask");
  const dir = mkdtempSync(join(tmpdir(), "curl-"));
  writeFileSync(join(dir, "image.png"), png);
  const made = images(run(command, dir));
  expect(made.length).toBe(1);
  expect(made[0].subarray(0, 8)).toEqual(PNG);

  // Python names the same file, and the mask once one is painted.
  await page.locator("select[name=model]").selectOption("weightfree-inpaint");
  await paintStroke(page);
  const code = await copied(page, "Copy as Python");
  expect(code).toContain('image=open("image.png", "rb")');
  expect(code).toContain('mask=open("mask.png", "rb")');
  if (!process.env.SDK_PYTHON) return;
  // A mask as OpenAI's: opaque, with a transparent hole where the image may change.
  const mask = await page.evaluate(() => {
    const c = document.createElement("canvas");
    c.width = c.height = 256;
    const ctx = c.getContext("2d")!;
    ctx.fillRect(0, 0, 256, 256);
    ctx.clearRect(64, 64, 128, 128);
    return c.toDataURL("image/png").split(",")[1];
  });
  writeFileSync(join(dir, "mask.png"), Buffer.from(mask, "base64"));
  python(code, dir);
  expect(readFileSync(join(dir, "image-0.png")).subarray(0, 8)).toEqual(PNG);
});
