"""What a rule may put in mail: the sensitive-word and personal-name checks.

A rule's ``mail_title``, ``expected_action`` and ``mail_code`` reach every case manager's
mailbox, so ``regiesignaal rules check`` refuses in them:

- **sensitive words** from ``engine/data/mail-forbidden.txt`` (plus ``mail-forbidden.txt``
  in the rules folder): a word matches case- and accent-insensitively as a whole word, as a
  hyphenated part (``VBL-termijn``) and, for words of at least
  ``COMPOUND_MIN_LETTERS`` letters, at the start or end of a longer word (Dutch compounds:
  ``Vreemdelingenbewaring``); a line with a space is a phrase matched on word boundaries;
- **possible personal names**: a word that starts with a capital and has lowercase letters
  after it, that is not the first word of a sentence (the text's start, or after ``.``,
  ``!``, ``?`` or ``:``), and is not in ``engine/data/mail-words.txt`` (plus
  ``mail-words.txt`` in the rules folder). Abbreviations in capitals only (``IND``) are no
  names.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
FORBIDDEN_FILE = "mail-forbidden.txt"
WORDS_FILE = "mail-words.txt"
COMPOUND_MIN_LETTERS = 4

_WORD = re.compile(r"[^\W\d_][\w&'’]*(?:-[\w&'’]+)*", re.UNICODE)


def fold(text: str) -> str:
    """Lowercase without accents: ``Suïcide`` -> ``suicide``."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def read_list(path: Path) -> list[str]:
    """The entries of a word-list file (``#`` starts a comment); [] when it is absent."""
    if not path.is_file():
        return []
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        entry = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if entry:
            out.append(entry)
    return out


@dataclass(frozen=True)
class MailWordLists:
    forbidden: tuple[str, ...]
    allowed_capitalised: frozenset[str]


@lru_cache(maxsize=1)
def _product_lists() -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(read_list(DATA_DIR / FORBIDDEN_FILE)), tuple(read_list(DATA_DIR / WORDS_FILE))


def word_lists(rules_dir: Path | None = None) -> MailWordLists:
    """The product's lists, extended by the rules folder's own files when present
    (read each time, so an edited list counts from the next check or run)."""
    product_forbidden, product_allowed = _product_lists()
    forbidden = list(product_forbidden)
    allowed = list(product_allowed)
    if rules_dir is not None:
        forbidden += read_list(rules_dir / FORBIDDEN_FILE)
        allowed += read_list(rules_dir / WORDS_FILE)
    return MailWordLists(
        tuple(dict.fromkeys(fold(w) for w in forbidden)), frozenset(fold(w) for w in allowed)
    )


def sensitive_words(text: str, forbidden: tuple[str, ...]) -> list[str]:
    """The listed words or phrases found in ``text`` (see the module docstring)."""
    folded = fold(text)
    tokens = [t for t in re.split(r"[^\w&.]+", folded) if t]
    parts = {p.strip(".") for t in tokens for p in re.split(r"[-/]", t) if p.strip(".")}
    words = {t.strip(".") for t in tokens}
    found = []
    for entry in forbidden:
        if " " in entry or not re.fullmatch(r"[\w]+", entry):
            pattern = rf"(?<!\w){re.escape(entry)}(?!\w)"
            if re.search(pattern, folded) or (
                " " not in entry and entry.strip(".") in words | parts
            ):
                found.append(entry)
            continue
        if entry in parts or (
            len(entry) >= COMPOUND_MIN_LETTERS
            and any(p.startswith(entry) or p.endswith(entry) for p in parts)
        ):
            found.append(entry)
    return found


_SENTENCE_END = re.compile(r"[.!?:]\s*$")


def possible_names(text: str, allowed: frozenset[str]) -> list[str]:
    """Capitalised words that are not sentence-initial and not in the allowed list."""
    found = []
    for m in _WORD.finditer(text):
        word = m.group(0)
        head = word.split("-")[0]
        if not word[0].isupper() or not any(ch.islower() for ch in head[1:]):
            continue  # lowercase word, or an abbreviation in capitals (IND, VBL-termijn)
        before = text[: m.start()].rstrip("(\"'“‘ ")
        if not before.strip() or _SENTENCE_END.search(before):
            continue  # first word of a sentence
        if fold(word) in allowed or all(fold(p) in allowed for p in word.split("-")):
            continue
        found.append(word)
    return found
