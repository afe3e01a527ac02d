"""The night gives the C allocator's free memory back between groups of messages (issue
19): glibc keeps freed memory in the middle of its heap otherwise, and a long night's
resident memory creeps up with every message it once held."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import sys
from regiesignaal.engine.memory import release_free_memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

held = [bytearray(100_000) for _ in range(2000)]  # below the mmap threshold: the heap
for block in held:
    block[::4096] = b"x" * len(block[::4096])  # touch every page
del held[::2]  # holes in the middle of the heap; the last block keeps the top in use
before = rss_mb()
released = release_free_memory()
after = rss_mb()
print(released, round(before - after))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_memory_in_the_middle_of_the_heap_goes_back_to_the_system() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    released, freed_mb = out[0] == "True", int(out[1])
    assert released
    assert freed_mb > 50  # 1,000 holes of 100 KB: close to 100 MB back


def test_without_malloc_trim_it_reports_nothing_released(monkeypatch: pytest.MonkeyPatch) -> None:
    from regiesignaal.engine import memory

    memory._malloc_trim.cache_clear()
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda _name: object())  # no such function
    try:
        assert memory.release_free_memory() is False
    finally:
        memory._malloc_trim.cache_clear()
