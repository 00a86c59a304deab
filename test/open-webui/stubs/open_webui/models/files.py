"""
Stand-in for backend/open_webui/models/files.py: FileForm and FileModel with upstream's fields, and a
FilesTable whose methods are async as in current releases (insert_new_file(user_id, form) and
get_file_by_id(id)), kept in memory so the test driver can report what the Tool stored.
"""

import time
from typing import Optional

from pydantic import BaseModel


class FileModel(BaseModel):
    id: str
    user_id: str
    hash: Optional[str] = None
    filename: str
    path: Optional[str] = None
    data: Optional[dict] = None
    meta: Optional[dict] = None
    access_control: Optional[dict] = None
    created_at: Optional[int] = None
    updated_at: Optional[int] = None

    def model_dump(self):  # pydantic 2's name; Debian ships pydantic 1
        return self.dict()


class FileForm(BaseModel):
    id: str
    hash: Optional[str] = None
    filename: str
    path: str
    data: dict = {}
    meta: dict = {}
    access_control: Optional[dict] = None


class FilesTable:
    def __init__(self) -> None:
        self.rows: dict = {}

    async def insert_new_file(self, user_id: str, form_data: FileForm) -> Optional[FileModel]:
        now = int(time.time())
        model = FileModel(**{**form_data.dict(), "user_id": user_id, "created_at": now, "updated_at": now})
        self.rows[model.id] = model
        return model

    async def get_file_by_id(self, id: str) -> Optional[FileModel]:
        return self.rows.get(id)


Files = FilesTable()
