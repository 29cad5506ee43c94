"""Serving a stored file the way HTTP clients that read datasets expect: its length and an ETag up
front (a HEAD answers without the body), one byte range at a time when asked (fsspec, and so
`datasets` with `streaming=True`, pyarrow and DuckDB read Parquet's footer first), and a 304 for a
copy the client has already. Django's FileResponse sends whole files only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse

BLOCK = 1 << 20
SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def requested_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """The (first, last) byte of a `Range: bytes=...` header, both inclusive; None to send the
    whole file (no header, or one this does not serve, such as several ranges, which RFC 9110
    lets a server ignore); False when the range lies past the end."""
    match = SINGLE_RANGE.match((header or "").strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:  # "bytes=-N": the last N bytes
        if not last:
            return None
        length = int(last)
        return (max(size - length, 0), size - 1) if length and size else False
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    return (start, end) if start < size else False


def file_blocks(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        while length > 0:
            block = handle.read(min(BLOCK, length))
            if not block:
                return
            length -= len(block)
            yield block


def file_response(
    request: HttpRequest, path: Path, *, content_type: str, filename: str, etag: str
) -> HttpResponseBase:
    """`path` as a download whose content never changes under `etag` (a strong validator)."""
    size = path.stat().st_size
    quoted = f'"{etag}"'
    if_none_match = request.headers.get("If-None-Match") or ""
    if if_none_match.strip() == "*" or quoted in if_none_match:  # W/"..." matches too (weakly)
        response: HttpResponseBase = HttpResponse(status=304)
    else:
        wanted = requested_range(request.headers.get("Range"), size)
        if_range = request.headers.get("If-Range")
        if if_range is not None and if_range != quoted:
            wanted = None  # the client's part is of another version: send all of this one
        if wanted is False:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
        else:
            start, end = wanted or (0, size - 1)
            length = max(end - start + 1, 0)
            if request.method == "HEAD":
                response = HttpResponse(content_type=content_type)
            else:
                response = StreamingHttpResponse(
                    file_blocks(path, start, length), content_type=content_type
                )
            if wanted:
                response.status_code = 206
                response["Content-Range"] = f"bytes {start}-{end}/{size}"
            response["Content-Length"] = str(length)
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["ETag"] = quoted
    response["Accept-Ranges"] = "bytes"
    return response
