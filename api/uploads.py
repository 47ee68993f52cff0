"""`POST /sources/upload`: a source from a file of any supported format (multipart form).

Form fields: `file` (required) and the metadata of `POST /sources` (`source_code`, `title`,
`source_type`, `quality`, `extraction_priority`, `language`, `author`, `url`, `source_date`,
`notes`; camelCase names are accepted too), `content_format` (detected from the bytes when
omitted), `subject_name` and `subject_aliases` (repeated, or one comma-separated value). The
source code and title default to the file's name, the title, author and language to what the
file says of itself. 201 with the source; errors are the JSON errors of the other REST routes.

Multipart bodies can be sent by any web page without a CORS preflight, so a browser request
from another origin is refused (`Origin` or `Sec-Fetch-Site` say so); API clients and the CLI
send neither header.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.rest import (
    ENUM_FIELDS,
    BadRequest,
    _allow,
    _error,
    _runtime,
    _source_raw,
    error_response,
    source_json,
)
from domain.errors import DomainError, FieldIssue, InvalidInput
from domain.services.conversion import create_source_from_file

UPLOAD_PATH = "/sources/upload"
METADATA = ("source_code", "title", "source_type", "quality", "extraction_priority",
            "language", "author", "url", "source_date", "notes")
FORM_FIELDS = ("file", *METADATA, "content_format", "subject_name", "subject_aliases")
MAX_FIELD_BYTES = 64 * 1024
MAX_ALIASES = 20
_ = ENUM_FIELDS  # the enum fields are checked by _source_raw, as for POST /sources


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def upload_json(row: Any) -> dict[str, Any]:
    """A source stored from a file, as the upload answers it."""
    return {**source_json(row), "content_format": row.content_format,
            "original_file_name": row.original_file_name,
            "original_sha256": row.original_sha256, "original_bytes": row.original_bytes,
            "conversion_notes": list(row.conversion_notes or []),
            "subject": ({"name": row.subject_name, "aliases": list(row.subject_aliases or [])}
                        if row.subject_name else None)}


def cross_site(request: Request) -> str | None:
    """Why a browser request from another site is refused, None for same-site or non-browser
    callers."""
    fetch_site = request.headers.get("sec-fetch-site", "").lower()
    if fetch_site in ("cross-site", "same-site"):
        return f"refused: an upload from another site (Sec-Fetch-Site: {fetch_site})"
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc.lower() != host.lower():
            return f"refused: an upload from another origin ({origin[:100]})"
    elif origin == "null":
        return "refused: an upload from an opaque origin"
    return None


async def _form(request: Request) -> tuple[dict[str, Any], UploadFile]:
    declared = request.headers.get("content-type", "")
    if not declared.lower().startswith("multipart/form-data"):
        raise _Unsupported(declared)
    try:
        form = await request.form(max_files=1, max_fields=len(FORM_FIELDS) + MAX_ALIASES,
                                  max_part_size=MAX_FIELD_BYTES)
    except Exception as exc:  # a malformed multipart body, of any kind: the client's fault
        detail = str(getattr(exc, "detail", "") or exc)[:200] or type(exc).__name__
        raise BadRequest(f"the body is not a readable multipart form: {detail}") from None
    issues: list[FieldIssue] = []
    values: dict[str, Any] = {}
    upload: UploadFile | None = None
    aliases: list[str] = []
    for name, value in form.multi_items():
        key = _snake(name)
        if key not in FORM_FIELDS:
            issues.append(FieldIssue((name[:64],), "is not a field of an upload; use "
                                                   f"{', '.join(FORM_FIELDS)}"))
        elif key == "file":
            if not isinstance(value, UploadFile):
                issues.append(FieldIssue(("file",), "must be a file part (filename given)"))
            else:
                upload = value
        elif isinstance(value, UploadFile):
            issues.append(FieldIssue((key,), "must be a text field, not a file"))
        elif key == "subject_aliases":
            aliases.extend(part.strip() for part in value.split(",") if part.strip())
        elif key in values:
            issues.append(FieldIssue((key,), "is given twice"))
        else:
            values[key] = value if value.strip() else None
    if upload is None and not any(issue.path == ("file",) for issue in issues):
        issues.append(FieldIssue(("file",), "is required: send the file as the `file` part"))
    if issues:
        raise InvalidInput(issues)
    assert upload is not None
    if aliases and not values.get("subject_name"):
        raise InvalidInput.single(("subject_name",), "is required with subject_aliases")
    values["_aliases"] = aliases
    return values, upload


class _Unsupported(Exception):
    def __init__(self, declared: str) -> None:
        super().__init__(declared)
        self.declared = declared


async def upload_source(request: Request) -> Response:
    """`POST /sources/upload`: store a source read from a file."""
    if (refusal := cross_site(request)) is not None:
        return _error(403, "forbidden", refusal)
    if (denied := await _allow(request, "editor")) is not None:
        return denied
    runtime = _runtime(request)
    try:
        values, upload = await _form(request)
        fmt = values.pop("content_format", None)
        subject_name = values.pop("subject_name", None)
        aliases = values.pop("_aliases")
        raw = _source_raw({key: value for key, value in values.items() if key in METADATA})
        if fmt is not None:
            raw["content_format"] = fmt
        if subject_name is not None:
            raw["subject"] = {"name": subject_name, "aliases": aliases}
        data = await upload.read()
        row = await create_source_from_file(runtime.ports, raw, data, upload.filename, ())
        return JSONResponse(upload_json(row), status_code=201)
    except _Unsupported as exc:
        shown = f"`{exc.declared[:100]}`" if exc.declared else "none"
        return _error(415, "unsupported_media_type",
                      "an upload is a multipart form (`Content-Type: multipart/form-data`) "
                      f"with the file in its `file` part (this request's content type: {shown})")
    except (DomainError, BadRequest) as exc:
        return error_response(exc)
