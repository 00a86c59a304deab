"""
title: codeinterp
author: codeinterp
description: Run Python in a Jupyter kernel on a codeinterp server, with the files attached to the chat at /mnt/data. Files and charts the code writes come back as files of the message.
version: 0.2.0
license: MIT
required_open_webui_version: 0.5.0
"""

# One self-contained file: paste it into Open WebUI (Workspace > Tools > +). It uses only the Python
# standard library and what Open WebUI ships (pydantic, and Open WebUI's own file store and chat models,
# imported lazily so the Tool still runs, with links instead of stored files, where they are missing).

import asyncio
import base64
import hashlib
import inspect
import io
import json
import logging
import mimetypes
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, Awaitable, Callable, Optional

from pydantic import BaseModel, Field

EventEmitter = Callable[[dict], Awaitable[None]]

TERMINAL = {"completed", "failed", "timed_out", "cancelled"}
STATUS_TEXT = {
    "queued": "Queued on codeinterp…",
    "preparing": "Preparing /mnt/data…",
    "running": "Running…",
}
OUTPUT_STATUS_INTERVAL_S = 0.5
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class CodeinterpError(Exception):
    """A failure to tell the model and the user in words (never a crash of the chat)."""

    def __init__(self, message: str, status: Optional[int] = None, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code


# Where Open WebUI serves an uploaded file (routers/files.py get_file_content_by_id), as pasted images link it.
OWUI_FILE_URL = re.compile(r"/api/v1/files/([A-Za-z0-9-]+)/content(?:[?#].*)?$")


class _Api:
    """codeinterp's HTTP API over urllib (blocking: every call runs in a worker thread)."""

    def __init__(self, base_url: str, key: str, timeout: float, end_user: Optional[str] = None):
        self.base = base_url.rstrip("/")
        self.key = key
        self.timeout = timeout
        # With a tenant key, every call names the Open WebUI user it is for: a codeinterp user of its own.
        self.end_user = end_user

    def _open(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None, timeout: Optional[float] = None):
        req = urllib.request.Request(self.base + path, data=body, method=method)
        req.add_header("Authorization", f"Bearer {self.key}")
        if self.end_user is not None:
            req.add_header("X-End-User", self.end_user)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as e:
            message, code = _describe_http_error(e)
            raise CodeinterpError(message, e.code, code) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise CodeinterpError(f"cannot reach codeinterp at {self.base}: {reason}") from None

    def json(self, method: str, path: str, payload: Any = None, timeout: Optional[float] = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"} if body is not None else {}
        with self._open(method, path, body, headers, timeout) as res:
            return json.loads(res.read().decode("utf-8") or "null")

    def bytes(self, path: str) -> bytes:
        with self._open("GET", path) as res:
            return res.read()

    def find_upload(self, sha256: str, name: str) -> Optional[str]:
        q = urllib.parse.urlencode({"sha256": sha256, "name": name})
        files = self.json("GET", f"/v1/files?{q}").get("files") or []
        return files[0]["id"] if files else None

    def upload(self, name: str, data: bytes, mime: str) -> str:
        boundary = "codeinterp-" + uuid.uuid4().hex
        # Raw UTF-8 in filename="…", as browsers send it; quotes and line breaks escaped as browsers do.
        safe = name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        head = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{safe}\"\r\n"
            f"Content-Type: {mime}\r\n\r\n"
        ).encode("utf-8")
        body = head + data + f"\r\n--{boundary}--\r\n".encode("ascii")
        with self._open("POST", "/v1/files", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}) as res:
            return json.loads(res.read().decode("utf-8"))["id"]

    def events(self, execution_id: str, last_event_id: Optional[str], on_event: Callable[[str, dict, Optional[str]], bool], read_timeout: float) -> None:
        """Reads the execution's Server-Sent Events until on_event returns True (done) or the stream ends."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        with self._open("GET", f"/v1/executions/{execution_id}/events", None, headers, read_timeout) as res:
            event, data, eid = "message", [], None
            for raw in res:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line == "":
                    if data:
                        try:
                            parsed = json.loads("\n".join(data))
                        except ValueError:
                            parsed = None
                        if isinstance(parsed, dict) and on_event(event, parsed, eid):
                            return
                    event, data, eid = "message", [], None
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)
                elif field == "id":
                    eid = value


def _describe_http_error(e: "urllib.error.HTTPError") -> tuple:
    """(words for the model and the user, codeinterp's error code)."""
    code = ""
    try:
        body = json.loads(e.read().decode("utf-8"))
        err = body.get("error", {}) if isinstance(body, dict) else {}
        code = str(err.get("code", ""))
        detail = f"{code}: {err.get('message', '')}".strip(": ")
    except Exception:
        detail = e.reason if isinstance(e.reason, str) else ""
    if e.code == 401:
        return (
            f"codeinterp rejected the API key ({detail or 'unauthorized'}). An administrator must set a valid key in "
            "the codeinterp Tool's valves (CODEINTERP_API_KEY), or you can set your own in its user settings.",
            code,
        )
    if code == "end_user_not_allowed":
        return (
            "the codeinterp Tool's CODEINTERP_API_KEY is a user key, which cannot act for each Open WebUI user. An "
            "administrator must make a tenant key (POST /v1/admin/api-keys {\"userId\": \"openwebui\", \"kind\": \"tenant\"}) "
            "and set it in the Tool's valves.",
            code,
        )
    return f"codeinterp answered {e.code}" + (f" ({detail})" if detail else ""), code


async def _maybe_await(value: Any) -> Any:
    """Open WebUI's models are synchronous in older releases and async in newer ones."""
    return await value if inspect.isawaitable(value) else value


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _image_ext(mime: str) -> str:
    ext = mimetypes.guess_extension(mime) or ".png"
    return ".jpg" if ext in (".jpe", ".jpeg") else ext


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = max(0, limit // 2 - 40)
    return f"{text[:half]}\n… [{len(text) - 2 * half} characters cut] …\n{text[-half:]}"


class _OpenWebUIStore:
    """
    Open WebUI's own file store, imported from the running Open WebUI: attachments are read the way its
    storage provider serves them (local disk, S3, GCS or Azure: Storage.get_file gives a local copy), and
    generated files are registered as that user's files, as Open WebUI's upload route does.
    """

    def __init__(self) -> None:
        try:
            from open_webui.models.files import FileForm, Files
            from open_webui.storage.provider import Storage
        except Exception:  # not inside Open WebUI, or a release with other internals
            self.available = False
            return
        self.available = True
        self.Files, self.FileForm, self.Storage = Files, FileForm, Storage
        try:
            from open_webui.models.chats import Chats

            self.Chats = Chats
        except Exception:
            self.Chats = None

    async def read(self, file_id: str, user: dict, max_bytes: int) -> tuple:
        """(name, mime, bytes) of an Open WebUI file the user may read."""
        f = await _maybe_await(self.Files.get_file_by_id(file_id))
        if f is None:
            raise CodeinterpError(f"attached file {file_id} is not in Open WebUI's file store")
        if _field(f, "user_id") != user.get("id") and user.get("role") != "admin":
            raise CodeinterpError(f"attached file {file_id} belongs to another user")
        meta = _field(f, "meta") or {}
        name = meta.get("name") or _field(f, "filename") or file_id
        mime = meta.get("content_type") or mimetypes.guess_type(name)[0] or "application/octet-stream"
        size = meta.get("size")
        if isinstance(size, int) and size > max_bytes:
            raise CodeinterpError(f"{name} is larger than the Tool's MAX_ATTACHMENT_MB")
        local = await asyncio.to_thread(self.Storage.get_file, _field(f, "path"))

        def _read() -> bytes:
            with open(local, "rb") as fh:
                data = fh.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise CodeinterpError(f"{name} is larger than the Tool's MAX_ATTACHMENT_MB")
            return data

        return name, mime, await asyncio.to_thread(_read)

    async def register(self, user: dict, name: str, mime: str, data: bytes, about: dict) -> dict:
        """Stores bytes as a file of the user's in Open WebUI; returns the file model as a dict."""
        file_id = str(uuid.uuid4())
        tags = {
            "OpenWebUI-User-Email": str(user.get("email", "")),
            "OpenWebUI-User-Id": str(user.get("id", "")),
            "OpenWebUI-User-Name": str(user.get("name", "")),
            "OpenWebUI-File-Id": file_id,
        }
        stored_name = f"{file_id}_{name}"
        try:
            _contents, path = await asyncio.to_thread(self.Storage.upload_file, io.BytesIO(data), stored_name, tags)
        except TypeError:  # releases whose upload_file takes no tags
            _contents, path = await asyncio.to_thread(self.Storage.upload_file, io.BytesIO(data), stored_name)
        form = self.FileForm(
            id=file_id,
            filename=name,
            path=path,
            data={},
            meta={
                "name": name,
                "content_type": mime,
                "size": len(data),
                "file_hash": hashlib.sha256(data).hexdigest(),
                "data": about,
            },
        )
        model = await _maybe_await(self.Files.insert_new_file(user["id"], form))
        if model is None:
            raise CodeinterpError(f"Open WebUI did not store {name}")
        return model.model_dump() if hasattr(model, "model_dump") else dict(model)

    async def add_to_message(self, chat_id: str, message_id: str, entries: list) -> list:
        """Appends entries to the message's files (kept with the chat); returns all of its files."""
        if self.Chats is None or not hasattr(self.Chats, "add_message_files_by_id_and_message_id"):
            return entries
        try:
            merged = await _maybe_await(self.Chats.add_message_files_by_id_and_message_id(chat_id, message_id, entries))
        except Exception:
            return entries
        return merged if merged else entries


class Tools:
    class Valves(BaseModel):
        CODEINTERP_URL: str = Field(default="http://localhost:8080", description="Base URL of the codeinterp API, as Open WebUI's server reaches it")
        CODEINTERP_API_KEY: str = Field(
            default="",
            description="A codeinterp tenant key (POST /v1/admin/api-keys with kind tenant). Every call names the Open WebUI user, so each one is a codeinterp user of its own (unless a user sets their own key)",
        )
        ADMIN_TOKEN: str = Field(
            default="",
            description="DEPRECATED (use a tenant key in CODEINTERP_API_KEY): codeinterp's ADMIN_TOKEN, with which the Tool makes a key per Open WebUI user (openwebui:<id>). It can make keys for anyone: keep it out of Open WebUI",
        )
        EXECUTION_TIMEOUT_S: int = Field(default=60, description="Longest one run may take (codeinterp caps it at its MAX_EXECUTION_TIMEOUT_MS)")
        REQUEST_TIMEOUT_S: int = Field(default=30, description="Timeout of each HTTP request to codeinterp")
        MAX_ATTACHMENTS: int = Field(default=20, description="Most attached files sent per run")
        MAX_ATTACHMENT_MB: int = Field(default=100, description="Largest attached file sent")
        MAX_OUTPUT_CHARS: int = Field(default=20000, description="Longest stdout/stderr returned to the model (the middle is cut)")
        MAX_RETURNED_FILES: int = Field(default=20, description="Most generated files copied into Open WebUI per run")
        MAX_RETURNED_FILE_MB: int = Field(default=50, description="Largest generated file copied into Open WebUI (larger ones get a codeinterp link)")
        LINK_TTL_S: int = Field(default=86400, description="Lifetime of codeinterp download links given out (codeinterp caps it at SIGNED_LINK_MAX_TTL_S)")

    class UserValves(BaseModel):
        CODEINTERP_API_KEY: str = Field(default="", description="Your own codeinterp API key (optional; otherwise the administrator's setting is used)")
        SHOW_LIVE_OUTPUT: bool = Field(default=True, description="Show the program's output in the status line while it runs")

    def __init__(self) -> None:
        self.valves = self.Valves()
        self.citation = False
        self._user_keys: dict = {}
        self._key_lock = threading.Lock()

    async def run_python(
        self,
        code: str,
        __user__: Optional[dict] = None,
        __files__: Optional[list] = None,
        __chat_id__: Optional[str] = None,
        __message_id__: Optional[str] = None,
        __messages__: Optional[list] = None,
        __metadata__: Optional[dict] = None,
        __event_emitter__: Optional[EventEmitter] = None,
        __request__: Any = None,
    ) -> str:
        """
        Run Python code in a Jupyter kernel (pandas, matplotlib, openpyxl available) and get its output.
        Files the user attached are in /mnt/data under their names (a second file with the same name is
        "name (2).ext"), images pasted into the message as image-1.png, image-2.jpg, …; /mnt/data is also
        the working directory. Save files you create under /mnt/data:
        they are given to the user as downloadable files, and charts shown with plt.show() appear inline.
        Variables persist between calls while answering the same message. Print what you need to see.
        :param code: The Python code to run.
        :return: JSON with status, stdout, stderr, error (with traceback) and the files the code wrote.
        """
        files = list(__files__ or []) + _pasted_images(__messages__ or [], __files__ or [])
        run = _Run(self, code, __user__ or {}, files, __chat_id__, __message_id__, __metadata__ or {}, __event_emitter__, __request__)
        return await run.execute()


# Module level, not methods: Open WebUI offers every public-looking method of Tools to the model.
def _pasted_images(messages: list, files: list) -> list:
    """
    Images of the current (last user) message: Open WebUI keeps them out of __files__ and sends them only
    as image_url parts of __messages__ (data URLs, or its own file URLs). As __files__ items, named
    image-1.png, image-2.jpg, … in their order; ones __files__ already carries are left out.
    """
    last = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None)
    content = last.get("content") if last else None
    if not isinstance(content, list):
        return []
    known = {str(f.get("url")) for f in files if isinstance(f, dict) and f.get("url")}
    out = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "image_url":
            continue
        image = part.get("image_url")
        url = str(image.get("url", "") if isinstance(image, dict) else image or "")
        if not url or url in known:
            continue
        n = len(out) + 1
        if url.startswith("data:"):
            out.append({"type": "image", "url": url, "name": None, "pasted": n})
            continue
        m = OWUI_FILE_URL.search(urllib.parse.urlsplit(url).path + ("?" if "?" in url else ""))
        if m:
            out.append({"type": "image", "id": m.group(1), "url": url, "name": None, "pasted": n})
    return out


_log = logging.getLogger(__name__)
_warned_admin_token = False


# Keys: a user's own key (acts as that key's user), else the deprecated admin-token mode, else the shared
# tenant key naming the Open WebUI user.
def _api_for(tools: "Tools", user: dict) -> _Api:
    global _warned_admin_token
    timeout = float(max(1, tools.valves.REQUEST_TIMEOUT_S))
    valves = user.get("valves")
    own = str(_field(valves, "CODEINTERP_API_KEY", "") or "").strip() if valves is not None else ""
    if own:
        return _Api(tools.valves.CODEINTERP_URL, own, timeout)
    if tools.valves.ADMIN_TOKEN and user.get("id"):
        if not _warned_admin_token:
            _warned_admin_token = True
            _log.warning(
                "codeinterp Tool: the ADMIN_TOKEN valve is deprecated and will be removed; make a tenant key "
                "(POST /v1/admin/api-keys with kind tenant), set it as CODEINTERP_API_KEY and clear ADMIN_TOKEN"
            )
        codeinterp_user = f"openwebui:{user['id']}"
        with tools._key_lock:
            key = tools._user_keys.get((tools.valves.CODEINTERP_URL, codeinterp_user))
            if key is None:
                admin = _Api(tools.valves.CODEINTERP_URL, tools.valves.ADMIN_TOKEN, timeout)
                key = admin.json("POST", "/v1/admin/api-keys", {"userId": codeinterp_user})["key"]
                tools._user_keys[(tools.valves.CODEINTERP_URL, codeinterp_user)] = key
        return _Api(tools.valves.CODEINTERP_URL, key, timeout)
    if not tools.valves.CODEINTERP_API_KEY:
        raise CodeinterpError("the codeinterp Tool has no API key: an administrator must set CODEINTERP_API_KEY (a tenant key) in its valves")
    if not user.get("id"):
        # Without a user to name, the call would act as the tenant itself, shared by everyone.
        raise CodeinterpError("the codeinterp Tool was called without an Open WebUI user")
    return _Api(tools.valves.CODEINTERP_URL, tools.valves.CODEINTERP_API_KEY, timeout, end_user=str(user["id"]))


class _Run:
    """One call of run_python: attach, execute, stream, collect, answer. Steps share this object's state."""

    def __init__(self, tools: Tools, code: str, user: dict, files: list, chat_id, message_id, metadata: dict, emitter, request) -> None:
        self.tools, self.v = tools, tools.valves
        self.code, self.user, self.owui_files = code, user, files
        self.chat_id = chat_id or metadata.get("chat_id") or "openwebui"
        self.message_id = message_id or metadata.get("message_id") or f"openwebui-{uuid.uuid4()}"
        self.emitter, self.request = emitter, request
        valves = user.get("valves")
        self.live = bool(_field(valves, "SHOW_LIVE_OUTPUT", True)) if valves is not None else True
        self.store = _OpenWebUIStore()
        self.notes: list = []

    async def emit(self, event: dict) -> None:
        if self.emitter is None:
            return
        try:
            await self.emitter(event)
        except Exception:
            pass  # the chat's display must never break the run

    async def status(self, description: str, done: bool = False) -> None:
        await self.emit({"type": "status", "data": {"description": description, "done": done}})

    async def execute(self) -> str:
        started = time.monotonic()
        try:
            self.api = await asyncio.to_thread(_api_for, self.tools, self.user)
            file_ids = await self.attach()
            execution = await self.run(file_ids)
            shown = await self.deliver(execution)
        except CodeinterpError as e:
            await self.status(f"codeinterp: {e}", done=True)
            return json.dumps({"status": "error", "error": str(e)}, ensure_ascii=False)
        except Exception as e:  # a bug or an unexpected answer: still an answer, and the status line closes
            message = f"the codeinterp Tool failed unexpectedly: {type(e).__name__}: {e}"
            await self.status(message, done=True)
            return json.dumps({"status": "error", "error": message}, ensure_ascii=False)
        status = execution.get("status")
        took = time.monotonic() - started
        error = (execution.get("result") or {}).get("error")
        if status == "completed" and not error:
            await self.status(f"Ran in {took:.1f} s" + (f", {len(shown)} file(s)" if shown else ""), done=True)
        elif status == "completed":
            await self.status(f"The code raised {error.get('ename', 'an error')}", done=True)
        else:
            await self.status(f"The run ended {status}", done=True)
        return self.answer(execution, shown)

    # ---- attachments ------------------------------------------------------------------------------

    async def attach(self) -> list:
        """codeinterp file ids for the message's Open WebUI files, uploading only content it lacks."""
        wanted = [f for f in self.owui_files if isinstance(f, dict) and f.get("type", "file") in ("file", "image")]
        if not wanted:
            return []
        if len(wanted) > self.v.MAX_ATTACHMENTS:
            self.notes.append(f"only the first {self.v.MAX_ATTACHMENTS} of {len(wanted)} attached files were sent")
            wanted = wanted[: self.v.MAX_ATTACHMENTS]
        await self.status(f"Attaching {len(wanted)} file(s)…")
        max_bytes = self.v.MAX_ATTACHMENT_MB * 1024 * 1024
        ids = []
        for i, item in enumerate(wanted):
            try:
                name, mime, data = await self.read_attachment(item, i, max_bytes)
            except CodeinterpError as e:
                self.notes.append(f"not attached: {e}")
                continue
            except Exception as e:  # the store could not give the bytes (a missing object, a network error)
                self.notes.append(f"not attached: {item.get('name') or item.get('id')}: {type(e).__name__}: {e}")
                continue
            digest = hashlib.sha256(data).hexdigest()
            found = await asyncio.to_thread(self.api.find_upload, digest, name)
            ids.append(found or await asyncio.to_thread(self.api.upload, name, data, mime))
        return list(dict.fromkeys(ids))

    async def read_attachment(self, item: dict, index: int, max_bytes: int) -> tuple:
        url = item.get("url") or ""
        pasted = item.get("pasted")
        if item.get("type") == "image" and isinstance(url, str) and url.startswith("data:"):
            # A pasted image kept inline as a data URL (no file in the store).
            head, _, b64 = url.partition(",")
            mime = head[5:].split(";")[0] or "image/png"
            if len(b64) > (max_bytes + 2) // 3 * 4 + 4:
                raise CodeinterpError("an inline image is larger than the Tool's MAX_ATTACHMENT_MB")
            data = base64.b64decode(b64)
            return item.get("name") or f"image-{pasted or index + 1}{_image_ext(mime)}", mime, data
        file_id = item.get("id") or _field(item.get("file") or {}, "id")
        if not file_id:
            raise CodeinterpError(f"{item.get('name', 'a file')} has no id in Open WebUI")
        if not self.store.available:
            raise CodeinterpError(f"{item.get('name', file_id)}: Open WebUI's file store cannot be imported here")
        name, mime, data = await self.store.read(file_id, self.user, max_bytes)
        if pasted:
            name = f"image-{pasted}{_image_ext(mime)}"
        return name, mime, data

    # ---- execution --------------------------------------------------------------------------------

    async def run(self, file_ids: list) -> dict:
        body = {"chatId": self.chat_id, "messageId": self.message_id, "code": self.code, "timeoutMs": int(self.v.EXECUTION_TIMEOUT_S * 1000)}
        if file_ids:
            body["fileIds"] = file_ids
        try:
            created = await asyncio.to_thread(self.api.json, "POST", "/v1/executions", body)
        except CodeinterpError as e:
            if e.code != "message_in_other_chat":
                raise
            # The user's own copy of a chat (Open WebUI keeps message ids when cloning): codeinterp keeps a
            # message id to its first chat, so the copy's message gets a workspace of its own under this id.
            body["messageId"] = f"{self.message_id}@{self.chat_id}"
            created = await asyncio.to_thread(self.api.json, "POST", "/v1/executions", body)
        await self.status(STATUS_TEXT.get(created.get("status"), "Queued on codeinterp…"))
        done = await self.stream(created["id"])
        return done or await self.poll(created["id"])

    async def stream(self, execution_id: str) -> Optional[dict]:
        """Follows the SSE stream (resuming after breaks); None when it gives up (the poll takes over)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        state = {"last_id": None, "done": None}

        def on_event(kind: str, data: dict, eid: Optional[str]) -> bool:
            if eid:
                state["last_id"] = eid
            loop.call_soon_threadsafe(queue.put_nowait, (kind, data))
            if kind == "done":
                state["done"] = data
                return True
            return False

        def reader() -> None:
            for _attempt in range(4):
                try:
                    self.api.events(execution_id, state["last_id"], on_event, read_timeout=60.0)
                except CodeinterpError:
                    pass
                except Exception:
                    pass
                if state["done"] is not None:
                    break
                time.sleep(0.5)
            loop.call_soon_threadsafe(queue.put_nowait, ("_end", {}))

        worker = loop.run_in_executor(None, reader)
        last_status = None
        # Open WebUI stores every status line with the chat: output lines are shown at most twice a second,
        # the latest one winning, and the last one is always shown.
        pending, shown_at = None, 0.0
        while True:
            kind, data = await queue.get()
            if kind == "_end":
                break
            if kind == "status" and data.get("status") != last_status and data.get("status") not in TERMINAL:
                last_status = data.get("status")
                await self.status(STATUS_TEXT.get(last_status, f"{last_status}…"))
            elif kind == "stdout" and self.live:
                lines = [ln for ln in ANSI.sub("", str(data.get("text", ""))).splitlines() if ln.strip()]
                if lines:
                    pending = f"Output: {_clip(lines[-1], 200)}"
            if pending and (time.monotonic() - shown_at >= OUTPUT_STATUS_INTERVAL_S or kind == "done"):
                await self.status(pending)
                pending, shown_at = None, time.monotonic()
        if pending:
            await self.status(pending)
        await worker
        return state["done"]

    async def poll(self, execution_id: str) -> dict:
        deadline = time.monotonic() + self.v.EXECUTION_TIMEOUT_S + 120
        while True:
            wait = max(1000, min(25_000, int((self.v.REQUEST_TIMEOUT_S - 5) * 1000)))
            ex = await asyncio.to_thread(self.api.json, "GET", f"/v1/executions/{execution_id}?waitMs={wait}", None, wait / 1000 + 10)
            if ex.get("status") in TERMINAL:
                return ex
            if time.monotonic() > deadline:
                raise CodeinterpError(f"execution {execution_id} did not end in time (last status {ex.get('status')})")
            await self.status(STATUS_TEXT.get(ex.get("status"), "Waiting…"))

    # ---- results ----------------------------------------------------------------------------------

    async def deliver(self, execution: dict) -> list:
        """Generated files and charts into Open WebUI's store and the message; returns what the model is told."""
        items = self.collect(execution)
        if len(items) > self.v.MAX_RETURNED_FILES:
            rest = ", ".join(i["name"] for i in items[self.v.MAX_RETURNED_FILES:])
            self.notes.append(f"only {self.v.MAX_RETURNED_FILES} of {len(items)} files were given to the user; not given: {rest}")
            items = items[: self.v.MAX_RETURNED_FILES]
        shown, entries = [], []
        for item in items:
            record, entry = await self.deliver_one(item)
            shown.append(record)
            if entry is not None:
                entries.append(entry)
        if entries:
            all_files = await self.store.add_to_message(self.chat_id, self.message_id, entries) if self.store.available else entries
            await self.emit({"type": "chat:message:files", "data": {"files": all_files}})
        return shown

    def collect(self, execution: dict) -> list:
        """Charts (image outputs, inline or stored) first, then the files the code wrote under /mnt/data."""
        items, from_outputs = [], set()
        for n, out in enumerate((execution.get("result") or {}).get("outputs") or []):
            mime = str(out.get("type", ""))
            if not mime.startswith("image/") or mime == "image/svg+xml":
                continue
            name = f"chart-{n + 1}{mimetypes.guess_extension(mime) or '.png'}"
            if out.get("fileId"):
                from_outputs.add(out["fileId"])
                items.append({"name": name, "mime": mime, "cid": out["fileId"], "data": None, "path": None, "size": None})
            elif out.get("data"):
                items.append({"name": name, "mime": mime, "cid": None, "data": base64.b64decode(out["data"]), "path": None, "size": None})
        for f in execution.get("files") or []:
            if f.get("id") in from_outputs:
                continue
            items.append({"name": f.get("name") or f.get("path"), "mime": f.get("mimeType") or "application/octet-stream", "cid": f.get("id"), "data": None, "path": f.get("path"), "size": f.get("size")})
        return items

    async def deliver_one(self, item: dict) -> tuple:
        """
        A copy in Open WebUI's store when it can take one (the user's file from then on, served by Open
        WebUI); otherwise a codeinterp signed link. Links are bearer URLs, so they are made only when needed.
        """
        name, mime, cid, data = item["name"], item["mime"], item["cid"], item["data"]
        kind = "image" if mime.startswith("image/") else "file"
        record = {"name": name, "path": item["path"], "mime_type": mime}
        fits = item["size"] is None or item["size"] <= self.v.MAX_RETURNED_FILE_MB * 1024 * 1024
        if self.store.available and fits:
            try:
                if data is None:
                    data = await asyncio.to_thread(self.api.bytes, f"/v1/files/{cid}/content")
                about = {"source": "codeinterp", "chat_id": self.chat_id, "message_id": self.message_id, "path": item["path"], "codeinterp_file_id": cid}
                model = await self.store.register(self.user, name, mime, data, about)
                url = self.file_url(model["id"])
                record.update({"id": model["id"], "url": url, "size": len(data)})
                return record, {"type": kind, "id": model["id"], "name": name, "url": url, "size": len(data), "content_type": mime}
            except Exception as e:
                self.notes.append(f"{name} could not be stored in Open WebUI ({e})")
        if cid:
            link = await asyncio.to_thread(self.api.json, "POST", f"/v1/files/{cid}/links", {"expiresIn": int(self.v.LINK_TTL_S)})
            record.update({"url": link["url"], "expires_at": link["expiresAt"]})
            return record, {"type": kind, "name": name, "url": link["url"], "content_type": mime}
        if data is not None and kind == "image":
            url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
            return record, {"type": "image", "name": name, "url": url}
        return record, None

    def file_url(self, file_id: str) -> str:
        """Where Open WebUI serves a stored file (its own route name, so a root path is respected)."""
        try:
            return str(self.request.app.url_path_for("get_file_content_by_id", id=file_id))
        except Exception:
            return f"/api/v1/files/{file_id}/content"

    def answer(self, execution: dict, shown: list) -> str:
        result = execution.get("result") or {}
        limit = self.v.MAX_OUTPUT_CHARS
        out = {
            "status": execution.get("status"),
            "stdout": _clip(ANSI.sub("", result.get("stdout") or ""), limit),
            "stderr": _clip(ANSI.sub("", result.get("stderr") or ""), limit),
        }
        error = result.get("error")
        if error:
            out["error"] = {
                "ename": error.get("ename"),
                "evalue": error.get("evalue"),
                "traceback": _clip(ANSI.sub("", "\n".join(error.get("traceback") or [])), limit),
            }
        if execution.get("failure"):
            out["failure"] = execution["failure"]
        if shown:
            out["files"] = shown
            out["note"] = "These files are already shown to the user in this message; to mention one, link its url."
        if self.notes:
            out["warnings"] = self.notes
        return json.dumps(out, ensure_ascii=False)
