"""
Stand-in for backend/open_webui/models/chats.py: add_message_files_by_id_and_message_id(id, message_id,
files) appends to the message's `files` in the chat history and returns all of them (async, as upstream).
"""


class ChatsTable:
    def __init__(self) -> None:
        self.message_files: dict = {}

    async def add_message_files_by_id_and_message_id(self, id: str, message_id: str, files: list) -> list:
        key = f"{id}/{message_id}"
        self.message_files[key] = self.message_files.get(key, []) + list(files)
        return self.message_files[key]


Chats = ChatsTable()
