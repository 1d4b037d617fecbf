"""SHA-256 of files, read in fixed-size chunks so multi-gigabyte weights never sit in memory."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    """One hashed file: its path relative to some root (POSIX form), SHA-256 hex and size."""

    path: str
    sha256: str
    bytes: int

    def to_manifest(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def digest_file(path: Path, root: Path) -> FileDigest:
    return FileDigest(
        path=path.relative_to(root).as_posix(), sha256=sha256_file(path), bytes=path.stat().st_size
    )


def combined_sha256(digests: list[FileDigest]) -> str:
    """Hash of a file set: SHA-256 of ``"<sha256>  <path>\\n"`` lines in the given order.

    The lines are ``sha256sum``'s output format, so the value can be reproduced with
    ``sha256sum FILES | sha256sum`` from the root (files sorted by path).
    """
    text = "".join(f"{d.sha256}  {d.path}\n" for d in digests)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
