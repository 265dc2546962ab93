"""The JSON-lines request stream of ``python -m recsys_core recommend`` (SPEC section 8).

Every input line gets exactly one output line, an answer or ``{"error": "line N: ..."}``, whatever
the bytes on it: a line is read with a length bound, decoded as strict UTF-8 (a byte-order mark at
the start of the stream is allowed, as it is in CSVs), checked for nesting depth before the JSON
parser sees it (the parser recurses per level), parsed with bounded integers (Python refuses to
convert integers of more than 4,300 digits, and no id or ``k`` needs more than a few dozen) and no
NaN/Infinity, and its ids must be valid Unicode (a lone surrogate cannot be written back out as
UTF-8). A failure while answering one line is that line's error, never the end of the batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO, TextIO

from recsys_core.serving.recommend import Request, RequestError, parse_request, printable

MAX_LINE_BYTES = 1 << 20  # 1 MiB: a history of tens of thousands of ids still fits
MAX_NESTING = 8  # a request nests two levels (an object of lists); a little room for clear messages
MAX_INTEGER_DIGITS = 40  # longer than any id a real system issues, far below Python's 4,300-digit limit

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]")


def read_lines(stream: BinaryIO | TextIO) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, raw bytes)`` per line of ``stream``; the bytes are None for a line longer than
    :data:`MAX_LINE_BYTES`, which is read past in chunks rather than held in memory."""
    binary = getattr(stream, "buffer", stream)

    def next_line(limit: int) -> bytes:
        line = binary.readline(limit)
        # A text stream without a buffer (io.StringIO, say): its own bytes back.
        return line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line

    number = 0
    while line := next_line(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := next_line(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield number, None
        else:
            yield number, line


def parse_line(raw: bytes | None, first: bool = False, default_k: int = 10) -> Request:
    """One request line as a :class:`Request`, or :class:`RequestError` saying what is wrong with it;
    ``first``: the stream's first line, which may start with a byte-order mark."""
    if raw is None:
        raise RequestError(f"longer than {MAX_LINE_BYTES // 2**20} MiB; send one request per line")
    if first and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1})") from None
    if not text.strip():
        raise RequestError('empty line; send one JSON request per line, e.g. {"user_id": "196", "k": 10}')
    depth = nesting_depth(text)
    if depth > MAX_NESTING:
        raise RequestError(f"nested {depth} levels deep; a request is an object of lists (2 levels)")
    try:
        payload = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise RequestError(f"not valid JSON ({error.msg} at column {error.colno})") from None
    return parse_request(payload, default_k=default_k)


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON ``text`` (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise RequestError(f"an integer of {len(digits.lstrip('-')):,} digits; ids and k have at most "
                           f"{MAX_INTEGER_DIGITS}")  # fmt: skip
    return int(digits)


def _no_constant(name: str) -> float:
    raise RequestError(f"{name} is not a number JSON allows")


def answer_lines(
    stream: BinaryIO | TextIO,
    answer: Callable[[Request, int], dict],
    write: Callable[[str], None],
    default_k: int = 10,
) -> tuple[int, int]:
    """Answer every line of ``stream``: ``write`` gets one JSON text per input line, the dict that
    ``answer(request, line_number)`` returns or ``{"error": "line N: ..."}``. Returns (answered, errors)."""
    answered = errors = 0
    for number, raw in read_lines(stream):
        try:
            payload = answer(parse_line(raw, first=number == 1, default_k=default_k), number)
            answered += 1
        except RequestError as error:
            payload, errors = {"error": printable(f"line {number}: {error}")}, errors + 1
        except Exception as error:  # one request that cannot be served must not end the batch
            payload = {"error": printable(f"line {number}: could not be answered ({type(error).__name__}: {error})")}
            errors += 1
        write(json.dumps(payload))
    return answered, errors
