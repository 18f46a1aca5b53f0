"""The model checkpoint: fetched once from its URL into a cache folder, and checked against the hash in its name.

OpenMMLab names its checkpoints ``<model>_<date>-<hash>.pth``, where ``<hash>`` is the first
8 hex digits of the file's sha256 (torch.hub's ``check_hash`` convention), e.g.
``deeplabv3_r50-d8_512x1024_40k_cityscapes_20200605_022449-acadc2f8.pth``. Such a name is
checked wherever the file comes from (a download or a local file); a name without a hash
part (``random.pth``) is accepted unchecked: there is nothing to compare with.

A download goes to ``<name>.part`` and is renamed only once complete and verified, so a
final name never holds half a file; after an interruption the ``.part`` is resumed with an
HTTP ``Range`` request. Only the standard library is used, so fetching needs neither torch
nor requests.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import file_sha256

LOG = logging.getLogger(__name__)

# torch.hub.HASH_REGEX, searched in the file name as torch.hub.load_state_dict_from_url(check_hash=True)
# does, so a file torch.hub accepts is accepted here and the other way round (a test pins the pattern).
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")
URL_SCHEMES = ("http://", "https://", "file://")
USER_AGENT = "deeplabv3-pipeline"
CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


def is_url(text: str | os.PathLike[str]) -> bool:
    """True for an ``http://``, ``https://`` or ``file://`` URL; anything else is a local path."""
    return isinstance(text, str) and text.lower().startswith(URL_SCHEMES)


def url_file_name(url: str) -> str:
    """The file name at the end of a URL's path, %-decoded (the query string is not part of it)."""
    path = urlparse(url).path
    name = "" if path.endswith("/") else unquote(PurePosixPath(path).name)
    if not name:
        raise UserError(f"URL {url} names no file (its path ends in '/'): give the URL of the .pth file")
    return name


def expected_sha256_prefix(name: str | os.PathLike[str]) -> str | None:
    """The sha256 prefix that a checkpoint's file name promises, or None when the name carries none.

    ``...-acadc2f8.pth`` -> ``"acadc2f8"``; ``random.pth`` -> None (accepted without a check).
    Only the last path component counts, so a folder such as ``runs-ab.1/`` is not mistaken for a hash.
    """
    match = HASH_REGEX.search(Path(name).name)
    return match.group(1) if match and match.group(1) else None


# What torch.save writes: a zip archive (PyTorch 1.6+), or the legacy format, a pickle (protocol 2+).
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTOCOL_OPCODE = 0x80


def not_a_checkpoint_reason(path: str | os.PathLike[str]) -> str | None:
    """Why the file at ``path`` cannot be a PyTorch checkpoint, from its first bytes (None: it may be one).

    Each kind of wrong file gets its own reason: an empty file, an HTML page (a failed download saves
    the server's error or login page), a text file, and bytes of no known format."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if not head:
        return "is empty (0 bytes): an interrupted download or a placeholder; download it again"
    if head.startswith(ZIP_MAGIC) or head[0] == PICKLE_PROTOCOL_OPCODE:
        return None
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in lowered[:1024]:
        return (
            "is an HTML page, not a checkpoint: the download saved a web page (an error, login or redirect "
            "page) instead of the .pth; download it again from the model zoo URL"
        )
    text = _as_text(head)
    if text is not None:
        first_line = text.strip().splitlines()[0][:60] if text.strip() else ""
        return f"is a text file ({first_line!r}...), not a checkpoint: point model.checkpoint at the .pth file"
    return (
        "is not a PyTorch checkpoint: it is neither a zip archive (torch.save's format) nor a pickle "
        "(the legacy format); is it the right file? Download it again"
    )


def _as_text(head: bytes) -> str | None:
    """``head`` as UTF-8 text of printable characters and white space, or None (binary data). A character
    cut at the end of the block read does not make text binary."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:
            return None
        text = head[: error.start].decode("utf-8")
    return text if all(char.isprintable() or char.isspace() for char in text) else None


def verify_checkpoint(path: str | os.PathLike[str], *, name: str | None = None) -> str:
    """The file's full sha256 (hex), after checking it against the prefix in its name.

    ``name`` is the name to take the prefix from, when it is not ``path``'s own (a ``.part``
    file, or a copy saved under another name). Raises :class:`UserError` when the file is
    missing or unreadable, or its sha256 does not start with the prefix. A name without a hash part
    (see :func:`expected_sha256_prefix`) is accepted without a check; its sha256 is still returned.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} does not exist: download it (README, 'Real data') "
            "or set model.checkpoint in config.yaml"
        )
    try:
        digest = file_sha256(path)
    except OSError as error:
        raise UserError(f"cannot read checkpoint {path}: {error}") from error
    expected = expected_sha256_prefix(name or path.name)
    if expected and not digest.startswith(expected):
        raise UserError(
            f"checkpoint {path} has sha256 {digest}, but its name says the sha256 starts with {expected}: "
            "it is a damaged or interrupted download, or another file under this name. Delete it and download "
            f"it again (if '-{expected}' in the name is not a hash, rename the file)"
        )
    return digest


def cached_path(url: str, cache_dir: str | os.PathLike[str]) -> Path:
    """Where the file of ``url`` lives in the cache: ``cache_dir / <the URL's file name>``."""
    return Path(cache_dir) / url_file_name(url)


def part_path(destination: Path) -> Path:
    """The partial download of ``destination``: kept between runs so that a rerun resumes it."""
    return destination.with_name(f"{destination.name}.part")


def download(url: str, destination: str | os.PathLike[str], *, timeout: float = 60, chunk: int = 1 << 20) -> Path:
    """Download ``url`` to ``destination`` once, resuming ``<destination>.part``, verified, renamed atomically.

    The sha256 prefix in the URL's file name (or else in ``destination``'s) is checked before the
    rename (names without a hash part are not checked); on a mismatch the part is deleted and
    :class:`UserError` raised. An existing ``destination`` is only verified. Network errors raise
    :class:`UserError` and keep the part for the next run to resume.
    """
    return download_verified(url, destination, timeout=timeout, chunk=chunk)[0]


def download_verified(
    url: str, destination: str | os.PathLike[str], *, timeout: float = 60, chunk: int = 1 << 20
) -> tuple[Path, str]:
    """:func:`download`, also returning the sha256 it verified (a second read of a 180 MB file is waste)."""
    destination = Path(destination)
    name = url_file_name(url)
    expected = expected_sha256_prefix(name) or expected_sha256_prefix(destination.name)
    if destination.is_file():  # only a verified download is ever renamed to this name
        LOG.info("%s is already downloaded", destination)
        return destination, verify_checkpoint(destination, name=name if expected_sha256_prefix(name) else None)
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(destination)
    _fetch_part(url, part, timeout=timeout, chunk=chunk)
    digest = file_sha256(part)
    if expected and not digest.startswith(expected):
        part.unlink(missing_ok=True)  # resuming a wrong file can never make it right
        raise UserError(
            f"downloaded {url} has sha256 {digest}, but its name says the sha256 starts with {expected}: "
            f"the download was damaged, or the server sent another file. Deleted {part}; rerun to download it "
            "again, and if it fails again check the URL"
        )
    os.replace(part, destination)
    LOG.info("downloaded %s -> %s (sha256 %s)", url, destination, digest)
    return destination, digest


def _fetch_part(url: str, part: Path, *, timeout: float, chunk: int) -> None:
    """Bring ``part`` to the complete file, appending to what an earlier run left."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        with error:
            if error.code != 416 or not offset:
                busy = error.code >= 500 or error.code == 429  # the server's trouble, not the URL's
                hint = "rerun later to resume the download" if busy else "check model.checkpoint's URL"
                raise UserError(f"cannot download {url}: HTTP {error.code} {error.reason}: {hint}") from error
            total = _unsatisfied_range_total(error.headers.get("Content-Range"))
        if total is None or total == offset:  # nothing left after offset: the part is complete
            LOG.info("%s: %s is already complete (%s bytes)", url, part, f"{offset:,}")
            return
        LOG.warning("%s: %s has %s bytes but the file has %s: starting over", url, part, offset, total)
        part.unlink()
        _fetch_part(url, part, timeout=timeout, chunk=chunk)
        return
    except (OSError, http.client.HTTPException) as error:
        raise _network_error(url, part, error) from error
    with response:
        start, total = _response_range(response)
        if start is None or (start and start != offset):  # not the requested resume: never append it
            if not offset:
                raise UserError(f"cannot download {url}: the server sent a part ({start=}) of the file unasked")
            LOG.warning("%s: the server resumed at an unexpected byte (%s, not %s): starting over", url, start, offset)
            response.close()
            part.unlink()
            _fetch_part(url, part, timeout=timeout, chunk=chunk)
            return
        if offset and start == 0:  # 200 to a Range request: the whole file comes, and replaces the part
            LOG.info("%s: the server ignored the Range request: downloading from the start", url)
        _copy(response, part, start, total, url=url, chunk=chunk)


def _response_range(response: http.client.HTTPResponse) -> tuple[int | None, int | None]:
    """(the byte of the file where the body starts, the file's size if known); start None if unreadable.

    A 206 states both in Content-Range; a 200 (or file://, which has no status) is the whole file.
    """
    if response.status == 206:
        match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if not match:
            return None, None
        return int(match.group(1)), None if match.group(3) == "*" else int(match.group(3))
    length = response.headers.get("Content-Length", "")
    return 0, int(length) if length.isdigit() else None


def _unsatisfied_range_total(header: str | None) -> int | None:
    """The file size a 416 answer states (``bytes */12345``), if it states one."""
    match = UNSATISFIED_RANGE.fullmatch((header or "").strip())
    return int(match.group(1)) if match else None


def _copy(
    response: http.client.HTTPResponse, part: Path, start: int, total: int | None, *, url: str, chunk: int
) -> None:
    """Write the body to ``part`` from byte ``start``, logging every ~10%; fsync so a crash loses no 'done' bytes."""
    done = start
    next_report = _next_tenth(done, total)
    try:
        with open(part, "ab" if start else "wb") as handle:
            while block := response.read(chunk):
                handle.write(block)
                done += len(block)
                if total and done >= next_report:
                    LOG.info("%s: %d%% (%s of %s bytes)", url, done * 100 // total, f"{done:,}", f"{total:,}")
                    next_report = _next_tenth(done, total)
            handle.flush()
            os.fsync(handle.fileno())
    except (OSError, http.client.HTTPException) as error:
        raise _network_error(url, part, error) from error
    if total is not None and done != total:  # the connection closed early without an error
        raise UserError(f"download of {url} stopped at {done:,} of {total:,} bytes; kept in {part}: rerun to resume it")


def _next_tenth(done: int, total: int | None) -> int:
    """The byte count at which the next 10% progress line is due."""
    if not total:
        return 0
    return (done * 10 // total + 1) * total // 10 if done < total else total


def _network_error(url: str, part: Path, error: BaseException) -> UserError:
    kept = f"; {part.stat().st_size:,} bytes are kept in {part}" if part.is_file() else ""
    reason = getattr(error, "reason", None) or error
    return UserError(f"cannot download {url}: {reason}{kept}: rerun to resume the download")


def fetch(source: str, output: str | os.PathLike[str] | None = None, *, timeout: float = 60) -> tuple[Path, str]:
    """A checkpoint from a URL (downloaded to ``output``) or a local file (copied to ``output`` if given), verified.

    Returns (the checkpoint's path, its sha256).
    """
    if is_url(source):
        if output is None:
            raise UserError(f"--output is needed to download {source}: where should the checkpoint go?")
        return download_verified(source, output, timeout=timeout)
    path = Path(source)
    digest = verify_checkpoint(path)
    if output is None or Path(output).resolve() == path.resolve():
        return path, digest
    output = Path(output)
    part = part_path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, part)
        os.replace(part, output)  # a copy, like a download, appears under its final name only when complete
    except OSError as error:
        part.unlink(missing_ok=True)
        raise UserError(f"cannot copy checkpoint {path} to {output}: {error}") from error
    return output, digest
