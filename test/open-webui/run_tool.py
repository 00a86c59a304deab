"""
Runs the codeinterp Tool the way Open WebUI does, for test/open-webui-tool.int.test.ts. The spec (JSON on
stdin) seeds Open WebUI's file store, then makes the calls; the driver prints what the model got, the events
the Tool emitted, and what it stored in Open WebUI. How Open WebUI runs a Tool (cited in the test):
utils/plugin.py load_tool_module_by_id exec()s the file into a fresh module and makes Tools(); utils/tools.py
get_tools sets module.valves = Valves(**saved) and __user__["valves"] = UserValves(**saved), and
get_async_tool_function_and_apply_extra_params passes only the extra parameters the function declares.
"""

import asyncio
import base64
import inspect
import io
import json
import sys
import types

from open_webui.models.chats import Chats
from open_webui.models.files import FileForm, Files
from open_webui.storage.provider import Storage


class _App:
    """Starlette's app.url_path_for for the one route the Tool asks about (routers/files.py)."""

    def url_path_for(self, name: str, **params: str) -> str:
        assert name == "get_file_content_by_id", name
        return f"/api/v1/files/{params['id']}/content"


class _Request:
    app = _App()


async def seed(files: list) -> None:
    # As routers/files.py upload_file_handler: Storage.upload_file(file, f"{id}_{name}", tags), then
    # Files.insert_new_file(user.id, FileForm(id, filename=name, path, meta={name, content_type, size})).
    for f in files:
        data = base64.b64decode(f["content_b64"])
        _, path = Storage.upload_file(io.BytesIO(data), f"{f['id']}_{f['name']}", {})
        await Files.insert_new_file(
            f["user_id"],
            FileForm(id=f["id"], filename=f["name"], path=path, data={"status": "completed"},
                     meta={"name": f["name"], "content_type": f["content_type"], "size": len(data), "data": {}}),
        )


async def main() -> None:
    spec = json.load(sys.stdin)
    await seed(spec.get("seed_files", []))
    if spec.get("without_store"):
        # An Open WebUI whose internals moved: the Tool's imports of them fail.
        sys.modules["open_webui.models.files"] = None
        sys.modules["open_webui.storage.provider"] = None
    module = types.ModuleType("tool_codeinterp")
    sys.modules["tool_codeinterp"] = module
    with open(spec["tool_path"], encoding="utf-8") as fh:
        exec(fh.read(), module.__dict__)
    tools = module.Tools()
    tools.valves = module.Tools.Valves(**spec.get("valves", {}))
    out = []
    for call in spec["calls"]:
        events: list = []

        async def emitter(event: dict) -> None:
            events.append(event)

        user = dict(call["user"])
        user["valves"] = module.Tools.UserValves(**call.get("user_valves", {}))
        metadata = {"chat_id": call["chat_id"], "message_id": call["message_id"], "session_id": "sid-1", "files": call.get("files", [])}
        extra = {
            "__event_emitter__": emitter,
            "__event_call__": None,
            "__user__": user,
            "__metadata__": metadata,
            "__request__": _Request(),
            "__model__": {"id": "test-model"},
            "__chat_id__": call["chat_id"],
            "__session_id__": "sid-1",
            "__message_id__": call["message_id"],
            "__messages__": call.get("messages", []),
            "__files__": call.get("files", []),
            "__oauth_token__": None,
        }
        fn = getattr(tools, spec.get("function", "run_python"))
        params = {k: v for k, v in extra.items() if k in inspect.signature(fn).parameters}
        result = await fn(code=call["code"], **params)
        out.append({"result": result, "events": events})
    print(json.dumps({
        "calls": out,
        "files": {k: v.dict() for k, v in Files.rows.items()},
        "message_files": Chats.message_files,
        "minted_users": sorted(u for (_url, u) in tools._user_keys),
    }))


asyncio.run(main())
