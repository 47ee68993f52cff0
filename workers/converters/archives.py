"""Opening DOCX and EPUB archives safely: bounded members, sizes and ratios, no odd paths.

The checks read the central directory only, before any member is inflated. zipfile never
inflates a member past the size its header declares, so bounding the declared sizes bounds
what reading can cost. The ratio check applies to members over 1 MiB: a small XML part may
compress 200:1 harmlessly, a bomb needs size to hurt.
"""

from __future__ import annotations

import io
import stat
import zipfile

from domain.documents import ConversionError, ConversionLimits

_RATIO_FLOOR = 1024 * 1024
_MIB = 1024 * 1024


def open_archive(data: bytes, limits: ConversionLimits, kind: str) -> zipfile.ZipFile:
    """`data` as a zip archive that passed every check; raises ConversionError naming why not."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ConversionError(f"the file is not a readable {kind} document: {exc}") from None
    try:
        check_archive(archive, limits, kind)
    except ConversionError:
        archive.close()
        raise
    return archive


def check_archive(archive: zipfile.ZipFile, limits: ConversionLimits, kind: str) -> None:
    """Refuse too many members, unpacking past the limits, symlinks and escaping paths."""
    infos = archive.infolist()
    if len(infos) > limits.max_archive_members:
        raise ConversionError(
            f"the {kind} archive has {len(infos):,} members; the limit is "
            f"{limits.max_archive_members:,}")
    total = 0
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in \
                name.replace("\\", "/").split("/"):
            raise ConversionError(f"the {kind} archive has an unsafe member path: {name!r}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ConversionError(f"the {kind} archive has a symbolic link: {name!r}")
        total += info.file_size
        if total > limits.max_unpacked_bytes:
            raise ConversionError(
                f"the {kind} archive unpacks to more than {size(limits.max_unpacked_bytes)}, "
                "the limit")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_FLOOR and ratio > limits.max_compression_ratio:
            raise ConversionError(
                f"the {kind} archive member {name!r} is compressed {ratio:.0f}:1, past the "
                f"{limits.max_compression_ratio}:1 limit (a zip bomb?)")


def size(count: int) -> str:
    """A byte count as a user reads it: "50 MB", "512 KB", "900 bytes"."""
    if count >= _MIB:
        return f"{count / _MIB:.1f}".removesuffix(".0") + " MB"
    if count >= 1024:
        return f"{count / 1024:.1f}".removesuffix(".0") + " KB"
    return f"{count} bytes"


def read_member(archive: zipfile.ZipFile, name: str, kind: str) -> bytes:
    """One member's bytes; a missing or damaged member is a ConversionError."""
    try:
        return archive.read(name)
    except KeyError:
        raise ConversionError(f"the {kind} document has no {name}") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise ConversionError(
            f"the file is not a readable {kind} document: {name}: {exc}") from None
