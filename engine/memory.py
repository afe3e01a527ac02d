"""Handing the C allocator's free memory back to the operating system.

Python returns a large object's memory (a rendered message of 100 KB, a spool range's
pickle) to the C allocator, which keeps it for reuse; glibc's allocator keeps it even
when the pieces never fit a later request, so a long night's resident memory creeps up
with what it once held (issue 19: +17 MB through the compose of a million-case night).
:func:`release_free_memory` asks glibc to give back what it holds free
(``malloc_trim(0)``, see malloc_trim(3)). Elsewhere (another C library, no glibc) it
does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError):  # no such function here: nothing to ask
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Give the C allocator's free memory back to the system; True when any was released
    (glibc), False when none was or the C library cannot. Costs a few milliseconds per
    hundred megabytes held; call it between pieces of work, not per object."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
