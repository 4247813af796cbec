import { defineConfig } from "@playwright/test";

// The bridge is started by scripts/test (demo backend) and its address passed as BRIDGE_URL.
// Browsers are never downloaded: Debian's Chromium is used.
export default defineConfig({
  testDir: "./tests",
  timeout: 60_000,
  // A worker whose event loop is stuck cannot time its own test out: the runner stops the
  // whole run instead, long after a normal one (about 7 minutes) would have ended.
  globalTimeout: 30 * 60_000,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL: process.env.BRIDGE_URL ?? "http://127.0.0.1:8000",
    headless: true,
    launchOptions: {
      executablePath: "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    },
  },
});
