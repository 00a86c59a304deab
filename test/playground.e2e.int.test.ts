import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { repoRoot } from "@codeinterp/config";
import { startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

/**
 * The playground in a real browser: Debian's Chromium, headless, driven by playwright-core (which never
 * downloads a browser of its own). As root (CI) a missing Chromium is installed with apt, like Jupyter is.
 */
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const SCREENSHOT = path.join(repoRoot, "test-results/playground.png");
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const canRun = existsSync(CHROMIUM) || isRoot;
if (!canRun) {
  console.warn(
    `playground e2e skipped: ${CHROMIUM} is missing and installing it needs root (apt-get install -y chromium)`,
  );
}

async function ensureChromium() {
  if (existsSync(CHROMIUM)) return;
  const apt = (args: string[]) =>
    promisify(execFile)("/usr/bin/env", ["DEBIAN_FRONTEND=noninteractive", "apt-get", ...args], {
      timeout: 15 * 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
  await apt(["update"]);
  await apt(["install", "-y", "--no-install-recommends", "chromium"]);
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium but ${CHROMIUM} is missing`);
}

const CSV = "month,revenue\nJan,120\nFeb,150\nMar,90\nApr,180\n";
const CODE = `%matplotlib inline
import time
import pandas as pd
import matplotlib.pyplot as plt

df = pd.read_csv("/mnt/data/sales.csv")
print("rows:", len(df), flush=True)
time.sleep(0.8)
print(df.to_string(index=False))

fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(df["month"], df["revenue"], color="#4f46e5")
ax.set_title("Revenue by month")
plt.tight_layout()
plt.show()

df.assign(share=df.revenue / df.revenue.sum()).to_excel("/mnt/data/summary.xlsx", index=False)
print("wrote /mnt/data/summary.xlsx")
`;

let stack: TestStack;
let key: string;
let context: BrowserContext;
let page: Page;
let userDataDir: string;
const problems: string[] = [];

/** On a failure: what the page showed, and a screenshot beside the kept one. */
function diagnoseOnFailure(name: string) {
  onTestFailed(async () => {
    const read = (sel: string) => page.textContent(sel, { timeout: 2000 }).catch(() => null);
    const state = {
      status: await page.getAttribute("#status", "data-status", { timeout: 2000 }).catch(() => null),
      stdout: await read("#stdout"),
      stderr: await read("#stderr"),
      traceback: await read("#traceback"),
      chips: await read("#attachments"),
    };
    console.error(`playground e2e "${name}" failed; page state:`, JSON.stringify(state), "problems:", problems);
    await page
      .screenshot({ path: SCREENSHOT.replace(/\.png$/, `-failure-${name}.png`), fullPage: true })
      .catch(() => undefined);
  });
}

describe.skipIf(!canRun)("web playground at / (Chromium)", () => {
  beforeAll(async () => {
    await ensureChromium();
    stack = await startTestStack();
    key = (await stack.newUser("playground-user")).key;
    userDataDir = await mkdtemp(path.join(os.tmpdir(), "codeinterp-chromium-"));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      acceptDownloads: true,
      viewport: { width: 1360, height: 900 },
      timeout: 60_000,
      deviceScaleFactor: 1,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(60_000);
    page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" && !/401 \(Unauthorized\)/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
  }, 20 * 60_000);

  afterAll(async () => {
    await context?.close();
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
    await stack?.close();
  });

  it("is served with a strict CSP and no inline script", async () => {
    const res = await fetch(`${stack.url}/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain("unsafe-inline");
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/\son[a-z]+=/i);
    const js = await fetch(`${stack.url}/playground/playground.js`);
    expect(js.headers.get("content-type")).toContain("javascript");
    expect(await js.text()).toContain("createClient");
  });

  it(
    "signs in, attaches a CSV, runs code that prints, plots and writes an xlsx, and downloads it",
    { timeout: 150_000 },
    async () => {
      diagnoseOnFailure("run");
      await page.goto(`${stack.url}/`);
      await page.locator("#signin").waitFor();

      await page.fill("#api-key", "not-a-key");
      await page.click("#signin-submit");
      await expect.poll(() => page.textContent("#signin-error")).toContain("not accepted");

      await page.fill("#api-key", key);
      await page.click("#signin-submit");
      await page.locator("#app").waitFor();
      expect(await page.evaluate(() => sessionStorage.getItem("codeinterp.apiKey"))).toBe(key);

      await page.fill("#chat-id", "e2e-chat");
      await page.fill("#message-id", "e2e-msg-1");
      await page.setInputFiles("#file-input", { name: "sales.csv", mimeType: "text/csv", buffer: Buffer.from(CSV) });
      await page.locator(".chip-ready", { hasText: "sales.csv" }).waitFor();
      await page.fill("#code", CODE);

      await page.click("#run");
      // stdout streams in while the code still runs.
      await page.locator("#stdout", { hasText: "rows: 4" }).waitFor({ timeout: 90_000 });
      const statusWhileRunning = await page.getAttribute("#status", "data-status");
      await page.locator('#status[data-status="completed"]').waitFor({ timeout: 90_000 });
      expect(["queued", "preparing", "running"]).toContain(statusWhileRunning);
      expect(await page.textContent("#stdout")).toContain("wrote /mnt/data/summary.xlsx");
      expect(await page.isHidden("#traceback")).toBe(true);

      // The plot: shown from a signed link of this origin (no key in any URL).
      const plot = page.locator("#figures img.plot");
      await plot.waitFor();
      await expect
        .poll(() =>
          plot.evaluate((img) => {
            const i = img as unknown as { complete: boolean; naturalWidth: number };
            return i.complete ? i.naturalWidth : 0;
          }),
        )
        .toBeGreaterThan(100);
      const src = (await plot.getAttribute("src")) ?? "";
      expect(src).toMatch(new RegExp(`^${stack.url}/links/[0-9a-f-]{36}\\?expires=\\d+&signature=[\\w-]{43}$`));
      expect(src).not.toContain(key);
      const png = await fetch(src);
      expect(png.headers.get("content-type")).toBe("image/png");

      // The generated workbook downloads with its name through a signed link and is a real xlsx (a zip with
      // the OOXML parts).
      const link = page.locator("#generated a.download", { hasText: "Download" }).first();
      expect(await page.textContent("#generated")).toContain("summary.xlsx");
      const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
      expect(download.suggestedFilename()).toBe("summary.xlsx");
      expect(download.url()).toMatch(new RegExp(`^${stack.url}/links/`));
      expect(download.url()).not.toContain(key);
      const bytes = await readFile((await download.path())!);
      expect(bytes.subarray(0, 4)).toEqual(Buffer.from([0x50, 0x4b, 0x03, 0x04]));
      expect(bytes.includes(Buffer.from("[Content_Types].xml"))).toBe(true);

      // The chat's files, grouped by message, include it; the message's /mnt/data lists both files.
      const group = page.locator('.message-group[data-message-id="e2e-msg-1"]');
      await group.locator(".file-path", { hasText: "summary.xlsx" }).waitFor();
      await page.locator("#context", { hasText: "summary.xlsx" }).waitFor();
      expect(await page.textContent("#context")).toContain("columns: month, revenue");

      await page.locator("#code").evaluate((ta) => void ((ta as unknown as { scrollTop: number }).scrollTop = 0));
      await mkdir(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(problems).toEqual([]);
    },
  );

  it(
    "a second message of the chat shows up as its own group; errors show the traceback",
    { timeout: 120_000 },
    async () => {
      diagnoseOnFailure("second-message");
      await page.click("#new-message");
      await page.fill("#code", "open('/mnt/data/notes.txt', 'w').write('hi')\nraise ValueError('bad input')\n");
      await page.click("#run");
      await page.locator('#status[data-status="completed"]').waitFor({ timeout: 90_000 });
      await page.locator("#traceback", { hasText: "ValueError" }).waitFor();
      await expect.poll(() => page.locator(".message-group").count()).toBe(2);
      await page.locator(".message-group .file-path", { hasText: "notes.txt" }).waitFor();

      // The key survives a reload of the tab; signing out forgets it.
      await page.reload();
      await page.locator("#app").waitFor();
      await page.click("#sign-out");
      await page.locator("#signin").waitFor();
      expect(await page.evaluate(() => sessionStorage.getItem("codeinterp.apiKey"))).toBeNull();
      expect(problems).toEqual([]);
    },
  );
});
