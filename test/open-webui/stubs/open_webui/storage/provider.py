"""
Stand-in for backend/open_webui/storage/provider.py, shaped like its S3StorageProvider: upload_file(file,
filename, tags) stores the bytes in the bucket and returns (contents, "s3://bucket/filename"); get_file(path)
downloads the object into the local cache (UPLOAD_DIR) and returns that local path. The stored path is not
a local file, so a Tool that opened it directly instead of asking Storage.get_file would fail.
"""

import os
import shutil
from typing import BinaryIO, Dict, Tuple

BUCKET_DIR = os.environ["OWUI_STUB_BUCKET"]
UPLOAD_DIR = os.environ["OWUI_STUB_UPLOAD_DIR"]
PREFIX = "s3://stub-bucket/"


class S3LikeStorageProvider:
    def upload_file(self, file: BinaryIO, filename: str, tags: Dict[str, str]) -> Tuple[bytes, str]:
        contents = file.read()
        if not contents:
            raise ValueError("empty content")
        with open(os.path.join(BUCKET_DIR, filename), "wb") as f:
            f.write(contents)
        return contents, PREFIX + filename

    def get_file(self, file_path: str) -> str:
        if not file_path.startswith(PREFIX):
            raise FileNotFoundError(file_path)
        name = file_path[len(PREFIX):]
        local = os.path.join(UPLOAD_DIR, name)
        shutil.copyfile(os.path.join(BUCKET_DIR, name), local)
        return local


Storage = S3LikeStorageProvider()
