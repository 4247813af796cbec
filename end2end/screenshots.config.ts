import { defineConfig } from "@playwright/test";
import base from "./playwright.config";

// The README's screenshots, taken by scripts/screenshots from a demo bridge: not a test run.
export default defineConfig({
  ...base,
  testDir: "./screenshots",
  timeout: 120_000,
  workers: 1,
  use: { ...base.use, viewport: { width: 1280, height: 800 }, colorScheme: "light" },
});
