# Stand-ins for the parts of Open WebUI that the codeinterp Tool imports, and nothing else. Each mirrors
# the upstream module named in its docstring (open-webui/open-webui, backend/open_webui/...).
