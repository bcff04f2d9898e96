"""Writing a changed message back: where each original line and appended segment goes.

A parsed message keeps its lines (`parts`) and the separators between them;
`set` marks lines changed (`dirty`) or appends segments. `layout` orders the
body, and `rewrite_bytes` puts every unchanged line back as its original
bytes, so only changed and appended segments are encoded anew. Pure.
"""

from __future__ import annotations


def layout(
    parts: list[str], seps: str | list[str], order: list[int], appended: list[str]
) -> list[int | str]:
    """The body in order: an int is an original part index, a str literal text.
    Appended segments follow the last non-blank original line (`order` holds the
    non-blank ones), each after the separator that line ends with (CR if none)."""
    n = len(parts)
    last = max(i for i in order if i < n)
    if isinstance(seps, str):
        sep_new = seps
    else:
        sep_new = seps[last] if last < n - 1 else (seps[-1] if seps else "\r")
    out: list[int | str] = []
    for i in range(n):
        out.append(i)
        if i == last:
            for text in appended:
                out.append(sep_new)
                out.append(text)
        if i < n - 1:
            out.append(seps if isinstance(seps, str) else seps[i])
    return out


def rewrite_bytes(
    prefix: bytes,
    original: list[bytes],
    parts: list[str],
    body: list[int | str],
    dirty: set[int],
    *,
    codec: str,
) -> bytes:
    """`prefix` and the `body` (from `layout`): original bytes for each unchanged
    part, `parts[i]` encoded in `codec` for a changed one, literal text encoded."""
    out = [prefix]
    for x in body:
        if isinstance(x, str):
            out.append(x.encode(codec))
        elif x in dirty:
            out.append(parts[x].encode(codec))
        else:
            out.append(original[x])
    return b"".join(out)
