"""Open WebUI's Jupyter code-interpreter client flow, step for step, with aiohttp and websockets.

Follows open-webui/open-webui backend/open_webui/utils/code_interpreter.py (JupyterCodeExecuter, @0915a1f):
password mode logs in with the _xsrf cookie and X-XSRFToken, token mode adds ?token= to every call; then
POST api/kernels, one execute_request (v5.3, stop_on_error) over the kernel websocket, messages read until
status idle, and DELETE api/kernels/{id}. Two deviations, both for Debian 12's older packages: websockets
10.x names the header argument `extra_headers` (Open WebUI runs websockets >= 13: `additional_headers`), and
aiohttp 3.8 takes a base_url without a path only (Open WebUI's aiohttp >= 3.10 joins relative paths onto
`http://host/jupyter/`), so relative paths are joined here the same way.

Usage: openwebui_jupyter_client.py URL CODE TOKEN PASSWORD [TIMEOUT]; prints {stdout, stderr, result, kernel_id} as JSON.
"""
import asyncio
import json
import sys
import uuid

import aiohttp
import websockets


async def run(base_url: str, code: str, token: str, password: str, timeout: float) -> dict:
    if not base_url.endswith("/"):
        base_url += "/"
    out = {"stdout": "", "stderr": "", "result": "", "kernel_id": "", "deleted": None}
    params = {}
    session = aiohttp.ClientSession(trust_env=True)
    at = lambda p: base_url + p  # noqa: E731 (what aiohttp >= 3.10 does with base_url)
    try:
        try:
            if password and not token:
                async with session.get(at("login")) as response:
                    response.raise_for_status()
                    xsrf = response.cookies["_xsrf"].value
                    session.cookie_jar.update_cookies(response.cookies)
                    session.headers.update({"X-XSRFToken": xsrf})
                async with session.post(at("login"), data={"_xsrf": xsrf, "password": password}, allow_redirects=True) as response:
                    response.raise_for_status()
                    session.cookie_jar.update_cookies(response.cookies)
            if token:
                params["token"] = token

            async with session.post(url=at("api/kernels"), params=params) as response:
                response.raise_for_status()
                out["kernel_id"] = (await response.json())["id"]

            ws_base = base_url.replace("http", "ws", 1)
            query = "&".join(f"{k}={v}" for k, v in params.items())
            url = f"{ws_base}api/kernels/{out['kernel_id']}/channels" + (f"?{query}" if query else "")
            headers = {}
            if password and not token:
                headers = {"Cookie": "; ".join(f"{c.key}={c.value}" for c in session.cookie_jar), **session.headers}
            header_arg = "additional_headers" if int(websockets.__version__.split(".")[0]) >= 13 else "extra_headers"
            async with websockets.connect(url, **{header_arg: headers}) as ws:
                msg_id = uuid.uuid4().hex
                await ws.send(json.dumps({
                    "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "user",
                               "session": uuid.uuid4().hex, "date": "", "version": "5.3"},
                    "parent_header": {}, "metadata": {},
                    "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                                "allow_stdin": False, "stop_on_error": True},
                    "channel": "shell",
                }))
                stdout, stderr, result = "", "", []
                while True:
                    try:
                        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                    except asyncio.TimeoutError:
                        stderr += "\nExecution timed out."
                        break
                    if message.get("parent_header", {}).get("msg_id") != msg_id:
                        continue
                    kind = message.get("msg_type")
                    content = message["content"]
                    if kind == "stream":
                        if content["name"] == "stdout":
                            stdout += content["text"]
                        elif content["name"] == "stderr":
                            stderr += content["text"]
                    elif kind in ("execute_result", "display_data"):
                        data = content["data"]
                        if "image/png" in data:
                            result.append(f"data:image/png;base64,{data['image/png']}")
                        elif "text/plain" in data:
                            result.append(data["text/plain"])
                    elif kind == "error":
                        stderr += "\n".join(content["traceback"])
                    elif kind == "status" and content["execution_state"] == "idle":
                        break
                out["stdout"], out["stderr"] = stdout.strip(), stderr.strip()
                out["result"] = "\n".join(result).strip() if result else ""
        except Exception as err:  # Open WebUI reports any failure this way
            out["stderr"] = f"Error: {err}"
    finally:
        if out["kernel_id"]:
            async with session.delete(at(f"api/kernels/{out['kernel_id']}"), params=params) as response:
                out["deleted"] = response.status
        await session.close()
    return out


if __name__ == "__main__":
    url, code, token, password = sys.argv[1:5]
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 60
    print(json.dumps(asyncio.run(run(url, code, token, password, timeout))))
