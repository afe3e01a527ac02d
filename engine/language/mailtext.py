"""What a rule may put in mail: the sensitive-word and personal-name checks.

A rule's ``mail_title``, ``expected_action`` and ``mail_code`` reach every case manager's
mailbox, so ``regiesignaal rules check`` refuses in them:

- **sensitive words** from ``engine/language/data/mail-forbidden.txt`` (plus ``mail-forbidden.txt``
  in the rules folder): a word matches case- and accent-insensitively as a whole word, as a
  hyphenated part (``VBL-termijn``) and, for words of at least
  ``COMPOUND_MIN_LETTERS`` letters, at the start or end of a longer word (Dutch compounds
  and inflections: ``Vreemdelingenbewaring``, ``medische``); an entry of several words
  (``uitstel van vertrek``, ``art. 64``) is a phrase: its words match in order with any
  punctuation or spacing between them (``art 64``, ``art.64``, ``Uitstel-van-vertrek``),
  and a last (first) word of at least ``COMPOUND_MIN_LETTERS`` letters may also start
  (end) a longer word;
- **possible personal names**: a word that starts with a capital and has lowercase letters
  after it, that is not the first word of a sentence (the text's start, or after ``.``,
  ``!``, ``?`` or ``:``), and is not in ``engine/language/data/mail-words.txt`` (plus
  ``mail-words.txt`` in the rules folder). Abbreviations in capitals only (``IND``) are no
  names. A word after a form of address or a case word (``mw.``, ``dhr.``, ``mevr.``,
  ``zaak:``; see ``NAME_INTRODUCERS``) or after an initial (``J.``) is never taken as the
  first word of a sentence: that is where a name stands.
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


def _entry_tokens(entry: str) -> list[str]:
    return re.findall(r"[^\W_]+", entry)


@lru_cache(maxsize=512)
def _phrase_pattern(entry: str) -> re.Pattern[str]:
    """The pattern of a listed phrase: its words in order, any non-letters between them."""
    tokens = _entry_tokens(entry)
    head = "" if len(tokens[0]) >= COMPOUND_MIN_LETTERS else r"(?<![^\W_])"
    tail = r"\w*" if len(tokens[-1]) >= COMPOUND_MIN_LETTERS else r"(?![^\W_])"
    return re.compile(head + r"[\W_]*".join(map(re.escape, tokens)) + tail)


def sensitive_words(text: str, forbidden: tuple[str, ...]) -> list[str]:
    """The listed words or phrases found in ``text`` (see the module docstring).

    ``forbidden`` holds folded entries (``word_lists``); the result keeps their order.
    """
    folded = fold(text)
    tokens = [t for t in re.split(r"[^\w&.]+", folded) if t]
    parts = {p.strip(".") for t in tokens for p in re.split(r"[-/.]", t) if p.strip(".")}
    found = []
    for entry in forbidden:
        if len(_entry_tokens(entry)) != 1:
            if _entry_tokens(entry) and _phrase_pattern(entry).search(folded):
                found.append(entry)
            continue
        word = _entry_tokens(entry)[0]
        if word in parts or (
            len(word) >= COMPOUND_MIN_LETTERS
            and any(p.startswith(word) or p.endswith(word) for p in parts)
        ):
            found.append(entry)
    return found


_SENTENCE_END = re.compile(r"[.!?:]\s*$")
# Words after which a capitalised word is where a name stands, even after a '.' or ':'
# (forms of address, their abbreviations, and words that introduce a person or a case).
NAME_INTRODUCERS = frozenset(
    {
        "mw", "mevr", "mevrouw", "mej", "dhr", "hr", "heer", "meneer", "mr", "dr", "drs",
        "ir", "ing", "prof", "fam", "familie", "zaak", "dossier", "client", "betrokkene",
        "vreemdeling", "naam", "echtgenoot", "echtgenote", "sr", "jr",
    }
)  # fmt: skip
_LAST_WORD = re.compile(r"([^\W\d_]+)[.:]?\s*$")


def _sentence_initial(before: str) -> bool:
    """Whether a word preceded by ``before`` starts a sentence (see the module docstring)."""
    if not before.strip():
        return True
    if not _SENTENCE_END.search(before):
        return False
    last = _LAST_WORD.search(before)
    if last is None:
        return True
    word = last.group(1)
    if fold(word) in NAME_INTRODUCERS:
        return False
    # an initial ("J. Jansen") is no sentence end
    return not (len(word) == 1 and word.isupper() and before.rstrip().endswith("."))


def possible_names(text: str, allowed: frozenset[str]) -> list[str]:
    """Capitalised words that are not sentence-initial and not in the allowed list."""
    found = []
    for m in _WORD.finditer(text):
        word = m.group(0)
        head = word.split("-")[0]
        if not word[0].isupper() or not any(ch.islower() for ch in head[1:]):
            continue  # lowercase word, or an abbreviation in capitals (IND, VBL-termijn)
        before = text[: m.start()].rstrip("(\"'“‘ ")
        if _sentence_initial(before):
            continue  # first word of a sentence
        if fold(word) in allowed or all(fold(p) in allowed for p in word.split("-")):
            continue
        found.append(word)
    return found
