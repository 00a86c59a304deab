// The playground's page script (bundled with @codeinterp/client by the API, see routes/playground.ts).
// Everything from the server is put in the page as text (textContent), never as HTML.
import { CodeinterpApiError, createClient } from "@codeinterp/client";
import type { CodeinterpClient, Execution, ExecutionOutput, ExecutionStatus, GeneratedFile } from "@codeinterp/client";

const KEY_STORAGE = "codeinterp.apiKey";
const CHAT_STORAGE = "codeinterp.chatId";
const SAMPLE_CODE = `%matplotlib inline
import os
import pandas as pd
import matplotlib.pyplot as plt

# Attached files are in /mnt/data (also the working directory);
# whatever you write there comes back as a downloadable file.
print(sorted(os.listdir("/mnt/data")))
`;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};
const h = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> & { className?: string } = {},
  ...children: Array<Node | string>
) => {
  const el = document.createElement(tag);
  Object.assign(el, props);
  for (const c of children) el.append(c);
  return el;
};
const randomId = (prefix: string) =>
  `${prefix}-${crypto.getRandomValues(new Uint32Array(2)).reduce((s, n) => s + n.toString(36), "")}`;
const humanSize = (n: number) =>
  n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} kB` : `${(n / 1048576).toFixed(1)} MB`;
const SHORT_TYPES: Record<string, string> = {
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "Excel",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": "PowerPoint",
  "application/pdf": "PDF",
  "text/csv": "CSV",
  "application/json": "JSON",
  "text/plain": "text",
};
const shortType = (mime: string) =>
  SHORT_TYPES[mime.split(";")[0]!.trim()] ??
  mime
    .split(";")[0]!
    .replace(/^(image|text)\//, "")
    .toUpperCase();
const displayPath = (f: { path: string; name: string }) =>
  f.path.startsWith("/outputs/") ? `${f.name} (figure)` : f.path;

interface Attachment {
  name: string;
  size: number;
  id: string | null;
  state: "uploading" | "ready" | "error";
  error?: string;
}

let client: CodeinterpClient | null = null;
let attachments: Attachment[] = [];
let current: { id: string; abort: AbortController } | null = null;
let tick: number | null = null;

function api(): CodeinterpClient {
  if (!client) throw new Error("not signed in");
  return client;
}

// ---------- sign in ----------

function showSignedIn(key: string) {
  client = createClient({ baseUrl: "", apiKey: key });
  $("signin").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  void refreshChatFiles();
}

function showSignIn(message = "") {
  client = null;
  $("app").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $<HTMLInputElement>("api-key").focus();
}

async function signIn(ev: SubmitEvent) {
  ev.preventDefault();
  const input = $<HTMLInputElement>("api-key");
  const key = input.value.trim();
  if (!key) return;
  const button = $<HTMLButtonElement>("signin-submit");
  button.disabled = true;
  $("signin-error").textContent = "";
  try {
    // Any authenticated read tells whether the key is good.
    await createClient({ baseUrl: "", apiKey: key }).listChatFiles(
      $<HTMLInputElement>("chat-id").value || "playground",
    );
    sessionStorage.setItem(KEY_STORAGE, key);
    input.value = "";
    showSignedIn(key);
  } catch (err) {
    $("signin-error").textContent =
      err instanceof CodeinterpApiError && err.status === 401
        ? "That key was not accepted."
        : `Could not reach the server: ${(err as Error).message}`;
  } finally {
    button.disabled = false;
  }
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  showSignIn();
}

/** A 401 mid-session (key revoked): back to the sign-in form. */
function handleError(err: unknown, where: string) {
  if (err instanceof CodeinterpApiError && err.status === 401) {
    sessionStorage.removeItem(KEY_STORAGE);
    showSignIn("Your key is no longer accepted; sign in again.");
    return;
  }
  const msg = err instanceof CodeinterpApiError ? `${err.code}: ${err.message}` : (err as Error).message;
  showTraceback(`${where}: ${msg}`);
}

// ---------- ids and attachments ----------

function chatId() {
  return $<HTMLInputElement>("chat-id").value.trim();
}
function messageId() {
  return $<HTMLInputElement>("message-id").value.trim();
}

function newMessage() {
  $<HTMLInputElement>("message-id").value = randomId("msg");
  attachments = [];
  renderAttachments();
  renderContext(null);
}

function renderAttachments() {
  const list = $("attachments");
  list.replaceChildren(
    ...attachments.map((a, i) => {
      const remove = h("button", {
        type: "button",
        className: "chip-remove",
        title: `Remove ${a.name}`,
        textContent: "×",
      });
      remove.addEventListener("click", () => {
        attachments.splice(i, 1);
        renderAttachments();
      });
      const state =
        a.state === "uploading" ? "uploading…" : a.state === "error" ? (a.error ?? "failed") : humanSize(a.size);
      return h(
        "li",
        { className: `chip chip-${a.state}`, title: a.name },
        h("span", { className: "chip-name", textContent: a.name }),
        h("span", { className: "chip-meta", textContent: state }),
        remove,
      );
    }),
  );
}

async function attach(files: FileList | null) {
  if (!files) return;
  const picked = [...files].map((file) => ({
    file,
    entry: { name: file.name, size: file.size, id: null, state: "uploading" } as Attachment,
  }));
  attachments.push(...picked.map((p) => p.entry));
  renderAttachments();
  await Promise.all(
    picked.map(async ({ file, entry }) => {
      try {
        const info = await api().uploadFile(file, file.name);
        Object.assign(entry, { id: info.id, name: info.name, state: "ready" });
      } catch (err) {
        Object.assign(entry, {
          state: "error",
          error: err instanceof CodeinterpApiError ? err.message : "upload failed",
        });
        if (err instanceof CodeinterpApiError && err.status === 401) handleError(err, "upload");
      }
      renderAttachments();
    }),
  );
}

// ---------- output ----------

function setStatus(status: ExecutionStatus | "idle" | "submitting", startedAt?: number) {
  const pill = $("status");
  pill.dataset.status = status;
  pill.textContent = status.replace("_", " ");
  if (tick !== null) clearInterval(tick);
  tick = null;
  const terminal = !["idle", "submitting", "queued", "preparing", "running"].includes(status);
  if (startedAt !== undefined && !terminal) {
    const show = () => ($("elapsed").textContent = `${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
    show();
    tick = window.setInterval(show, 100);
  }
}

function resetOutput() {
  $("stdout").replaceChildren();
  for (const id of ["stderr", "traceback"]) {
    $(id).replaceChildren();
    $(id).hidden = true;
  }
  $("figures").replaceChildren();
  $("generated").replaceChildren();
  $("generated-block").hidden = true;
}

function appendStream(id: "stdout" | "stderr", text: string) {
  const el = $(id);
  el.hidden = false;
  const atBottom = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
  el.append(text);
  if (atBottom) el.scrollTop = el.scrollHeight;
}

function showTraceback(text: string) {
  const el = $("traceback");
  el.hidden = false;
  el.textContent = text;
}

const renderedOutputs = new Set<string>();
async function renderOutput(o: ExecutionOutput) {
  const key = o.fileId ?? `${o.type}:${o.data ?? ""}`;
  if (renderedOutputs.has(key)) return;
  renderedOutputs.add(key);
  const figures = $("figures");
  if (o.type.startsWith("image/")) {
    const figure = h("figure", { className: "figure" });
    figures.append(figure);
    let src: string;
    if (o.fileId) {
      // A signed link: the image loads like any other, and no key ever sits in a URL.
      src = (await api().createLink(o.fileId)).url;
    } else {
      src = `data:${o.type};base64,${o.data ?? ""}`;
    }
    figure.append(h("img", { src, alt: "plot output", className: "plot" }));
  } else if (o.data !== undefined) {
    figures.append(h("pre", { className: `console result result-${o.type.replace(/\W/g, "-")}`, textContent: o.data }));
  }
}

function fileRow(f: Pick<GeneratedFile, "id" | "name" | "path" | "size" | "mimeType">) {
  const link = h("a", { href: "#", className: "download", textContent: "Download", title: `Download ${f.name}` });
  link.dataset.fileId = f.id;
  link.dataset.name = f.name;
  link.dataset.type = f.mimeType;
  return h(
    "li",
    { className: "file" },
    h("span", { className: "file-path", textContent: displayPath(f), title: f.path }),
    h("span", {
      className: "file-meta",
      textContent: `${humanSize(f.size)} · ${shortType(f.mimeType)}`,
      title: f.mimeType,
    }),
    link,
  );
}

/**
 * A plain link cannot send the key, so a click asks for a short-lived signed link and follows it: the
 * browser streams the file to disk itself (no copy in page memory) under the name the server gives.
 */
async function download(link: HTMLAnchorElement) {
  const { fileId, name } = link.dataset;
  if (!fileId) return;
  link.classList.add("busy");
  try {
    const signed = await api().createLink(fileId, { expiresIn: 60 });
    const a = h("a", { href: signed.url, download: name ?? "" });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (err) {
    handleError(err, `download of ${name}`);
  } finally {
    link.classList.remove("busy");
  }
}

function renderGenerated(files: GeneratedFile[]) {
  const visible = files.filter((f) => !f.path.startsWith("/outputs/"));
  $("generated").replaceChildren(...visible.map(fileRow));
  $("generated-block").hidden = visible.length === 0;
}

function renderContext(ctx: Awaited<ReturnType<CodeinterpClient["messageContext"]>> | null) {
  const list = $("context");
  if (!ctx || ctx.files.length === 0) {
    list.replaceChildren(h("li", { className: "muted small", textContent: "Nothing yet: attach files or run code." }));
    return;
  }
  list.replaceChildren(
    ...ctx.files.map((f) => {
      const p = f.preview;
      const preview = !p
        ? ""
        : p.kind === "columns"
          ? `columns: ${p.columns.join(", ")}`
          : p.kind === "sheets"
            ? `sheets: ${p.sheets.join(", ")}`
            : p.kind === "keys"
              ? `keys: ${p.keys.join(", ")}`
              : p.firstLine;
      return h(
        "li",
        {},
        h("code", { textContent: f.path }),
        h("span", { className: "muted small", textContent: ` ${humanSize(f.size)}${preview ? ` · ${preview}` : ""}` }),
      );
    }),
  );
}

async function refreshContext() {
  try {
    renderContext(await api().messageContext(messageId()));
  } catch {
    // informational only
  }
}

async function refreshChatFiles() {
  const id = chatId();
  $("chat-files-id").textContent = id;
  try {
    const listing = await api().listChatFiles(id);
    $("chat-files-total").textContent = `${listing.totalFiles} file${listing.totalFiles === 1 ? "" : "s"}`;
    const groups = Object.entries(listing.messages);
    if (groups.length === 0) {
      $("chat-files-list").replaceChildren(
        h("p", { className: "muted small", textContent: "No generated files in this chat yet." }),
      );
      return;
    }
    $("chat-files-list").replaceChildren(
      ...groups.map(([mid, files]) => {
        const group = h(
          "div",
          { className: `message-group${mid === messageId() ? " current" : ""}` },
          h(
            "h3",
            {},
            h("span", { className: "muted", textContent: "message " }),
            h("code", { textContent: mid }),
            mid === messageId() ? h("span", { className: "tag", textContent: "current" }) : "",
          ),
          h("ul", { className: "files" }, ...files.map(fileRow)),
        );
        group.dataset.messageId = mid;
        return group;
      }),
    );
  } catch (err) {
    handleError(err, "listing the chat's files");
  }
}

// ---------- run ----------

async function run() {
  if (current) return;
  if (attachments.some((a) => a.state === "uploading")) {
    showTraceback("Wait for the uploads to finish.");
    return;
  }
  const code = $<HTMLTextAreaElement>("code").value;
  if (!chatId() || !messageId()) return;
  sessionStorage.setItem(CHAT_STORAGE, chatId());
  resetOutput();
  renderedOutputs.clear();
  const runButton = $<HTMLButtonElement>("run");
  const cancelButton = $<HTMLButtonElement>("cancel");
  runButton.disabled = true;
  const t0 = Date.now();
  setStatus("submitting", t0);
  const fileIds = attachments.filter((a) => a.state === "ready" && a.id).map((a) => a.id!);
  let execution: Execution | null = null;
  try {
    const created = await api().execute({
      chatId: chatId(),
      messageId: messageId(),
      code,
      ...(fileIds.length ? { fileIds } : {}),
    });
    // They now belong to the message (its /mnt/data); later runs of the message see them without resending.
    attachments = [];
    renderAttachments();
    current = { id: created.id, abort: new AbortController() };
    cancelButton.disabled = false;
    setStatus(created.status, t0);
    const liveFiles: GeneratedFile[] = [];
    try {
      for await (const e of api().stream(created.id, { signal: current.abort.signal })) {
        if (e.type === "status") setStatus(e.status, t0);
        else if (e.type === "stdout" || e.type === "stderr") appendStream(e.type, e.text);
        else if (e.type === "output")
          void renderOutput(e.output).catch((err: unknown) => handleError(err, "loading a plot"));
        else if (e.type === "file") {
          liveFiles.push({ ...e.file, url: `/v1/files/${e.file.id}/content` });
          renderGenerated(liveFiles);
        } else if (e.type === "done") execution = e.execution;
      }
    } catch (err) {
      if (err instanceof CodeinterpApiError) throw err;
      // The stream broke for good: the long-poll still gets the result.
    }
    execution ??= await api().wait(created.id);
    finish(execution);
  } catch (err) {
    setStatus("idle");
    handleError(err, "run");
  } finally {
    current = null;
    runButton.disabled = false;
    cancelButton.disabled = true;
    $("elapsed").textContent = execution ? `${((Date.now() - t0) / 1000).toFixed(1)} s` : "";
    void refreshChatFiles();
    void refreshContext();
  }
}

function finish(execution: Execution) {
  setStatus(execution.status);
  const r = execution.result;
  // Output that the stream did not carry (a reconnect, the fallback) comes from the final result.
  if (r) {
    if (!$("stdout").textContent && r.stdout) appendStream("stdout", r.stdout);
    if (!$("stderr").textContent && r.stderr) appendStream("stderr", r.stderr);
    for (const o of r.outputs) void renderOutput(o).catch((err: unknown) => handleError(err, "loading a plot"));
    if (r.error)
      showTraceback(r.error.traceback.length ? r.error.traceback.join("\n") : `${r.error.ename}: ${r.error.evalue}`);
  }
  if (execution.failure) showTraceback(`${execution.status}: ${execution.failure.code}: ${execution.failure.message}`);
  else if (execution.status === "timed_out") showTraceback("The execution ran out of time.");
  if (!$("stdout").textContent && !r?.error)
    $("stdout").append(h("span", { className: "placeholder", textContent: "(no output)" }));
  renderGenerated(execution.files);
}

async function cancel() {
  if (!current) return;
  $<HTMLButtonElement>("cancel").disabled = true;
  try {
    await api().cancel(current.id);
  } catch (err) {
    if (!(err instanceof CodeinterpApiError && err.code === "execution_finished")) handleError(err, "cancel");
  }
}

// ---------- wiring ----------

function init() {
  $<HTMLInputElement>("chat-id").value = sessionStorage.getItem(CHAT_STORAGE) ?? randomId("chat");
  $<HTMLInputElement>("message-id").value = randomId("msg");
  $<HTMLTextAreaElement>("code").value = SAMPLE_CODE;

  $<HTMLFormElement>("signin-form").addEventListener("submit", (ev) => void signIn(ev));
  $("sign-out").addEventListener("click", signOut);
  $("new-message").addEventListener("click", newMessage);
  $<HTMLInputElement>("file-input").addEventListener("change", (ev) => {
    const input = ev.target as HTMLInputElement;
    void attach(input.files).finally(() => (input.value = ""));
  });
  $("run").addEventListener("click", () => void run());
  $("cancel").addEventListener("click", () => void cancel());
  $("refresh-files").addEventListener("click", () => void refreshChatFiles());
  $("chat-id").addEventListener("change", () => {
    sessionStorage.setItem(CHAT_STORAGE, chatId());
    void refreshChatFiles();
  });
  $("message-id").addEventListener("change", () => void refreshContext());
  $("code").addEventListener("keydown", (ev) => {
    if ((ev.ctrlKey || ev.metaKey) && ev.key === "Enter") {
      ev.preventDefault();
      void run();
    } else if (ev.key === "Tab" && !ev.shiftKey) {
      // Indent instead of leaving the editor.
      ev.preventDefault();
      const ta = ev.target as HTMLTextAreaElement;
      ta.setRangeText("    ", ta.selectionStart, ta.selectionEnd, "end");
    }
  });
  document.addEventListener("click", (ev) => {
    const link = (ev.target as Element | null)?.closest?.("a.download");
    if (link instanceof HTMLAnchorElement) {
      ev.preventDefault();
      void download(link);
    }
  });

  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) showSignedIn(key);
  else showSignIn();
}

init();
