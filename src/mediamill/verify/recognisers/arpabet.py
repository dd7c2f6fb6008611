"""Pronunciations for words the pocketsphinx dictionary lacks.

Contract: ``guess(word) -> list[str] | None`` returns CMU/ARPABET phones
(``["OW", "K", "AA", "F", "ER"]``) for an English word, or None when no
letter-to-sound engine is available. pocketsphinx 5 has no letter-to-sound of
its own, so this uses espeak-ng, through the bridge that ships inside
``piper-tts`` (Piper reads text with it, so its guess is also what a Piper
take actually says). The IPA it returns is mapped to the 39 ARPABET phones of
the en-us acoustic model.

espeak-ng keeps one global voice; the bridge is used under a lock here, but
Piper itself sets the voice without it, so a Piper voice of another language
synthesising in the same process at the same moment could, rarely, make a
guess come out in that language. The guess is only used for checking.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

PHONES = frozenset(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split()
)
# espeak-ng en-us IPA -> ARPABET, longest symbols first when matching.
_IPA = {
    "aɪə": "AY ER",
    "aʊə": "AW ER",
    "ɑːɹ": "AA R",
    "ɔːɹ": "AO R",
    "ɛɹ": "EH R",
    "ɪɹ": "IH R",
    "ʊɹ": "UH R",
    "oːɹ": "AO R",
    "iə": "IY AH",
    "aɪ": "AY",
    "aʊ": "AW",
    "eɪ": "EY",
    "oʊ": "OW",
    "ɔɪ": "OY",
    "əʊ": "OW",
    "tʃ": "CH",
    "dʒ": "JH",
    "ɑː": "AA",
    "ɔː": "AO",
    "ɜː": "ER",
    "iː": "IY",
    "uː": "UW",
    "oː": "OW",
    "aː": "AA",
    "ɑ": "AA",
    "æ": "AE",
    "ʌ": "AH",
    "ə": "AH",
    "ɐ": "AH",
    "ɔ": "AO",
    "ɒ": "AA",
    "ɛ": "EH",
    "e": "EH",
    "ɚ": "ER",
    "ɝ": "ER",
    "ɜ": "ER",
    "ɪ": "IH",
    "ᵻ": "IH",
    "i": "IY",
    "o": "OW",
    "ʊ": "UH",
    "u": "UW",
    "a": "AE",
    "y": "UW",
    "b": "B",
    "d": "D",
    "ð": "DH",
    "f": "F",
    "ɡ": "G",
    "g": "G",
    "h": "HH",
    "k": "K",
    "l": "L",
    "ɫ": "L",
    "m": "M",
    "n": "N",
    "ŋ": "NG",
    "p": "P",
    "ɹ": "R",
    "r": "R",
    "ɾ": "T",
    "s": "S",
    "ʃ": "SH",
    "t": "T",
    "θ": "TH",
    "v": "V",
    "w": "W",
    "j": "Y",
    "z": "Z",
    "ʒ": "ZH",
    "ʔ": "T",
    "x": "K",
    "ç": "HH",
    "ɬ": "L",
    "ɲ": "N Y",
    "ʎ": "L Y",
    "β": "V",
    "ɣ": "G",
    "ʁ": "R",
    "χ": "HH",
    "ɦ": "HH",
    "c": "K",
    "ɟ": "JH",
}
_MAX = max(map(len, _IPA))
_lock = threading.Lock()
_ready: list[bool] = []


def ipa_to_arpabet(ipa: str) -> list[str]:
    """IPA (as espeak-ng writes it) to ARPABET phones; unknown symbols are dropped."""
    text = unicodedata.normalize("NFD", ipa)
    text = re.sub(r"\([^)]*\)", "", text)  # espeak's language-switch marks
    phones: list[str] = []
    i = 0
    while i < len(text):
        for size in range(min(_MAX, len(text) - i), 0, -1):
            piece = text[i : i + size]
            if piece in _IPA:
                phones += _IPA[piece].split()
                i += size
                break
        else:
            i += 1  # stress, length, syllabic marks and anything unknown
    return [p for p in phones if p in PHONES]


def _espeak():
    """The espeak-ng bridge inside piper-tts, initialised once; None without piper."""
    try:
        from piper import espeakbridge
        from piper.phonemize_espeak import ESPEAK_DATA_DIR
    except ImportError:
        return None
    if not _ready:
        espeakbridge.initialize(str(ESPEAK_DATA_DIR))
        _ready.append(True)
    return espeakbridge


@lru_cache(maxsize=4096)
def guess(word: str, voice: str = "en-us") -> tuple[str, ...] | None:
    """ARPABET phones for ``word`` by espeak-ng's rules, or None without an engine."""
    with _lock:
        bridge = _espeak()
        if bridge is None:
            return None
        bridge.set_voice(voice)
        clauses = bridge.get_phonemes(word)
    phones = ipa_to_arpabet(" ".join(c[0] for c in clauses))
    return tuple(phones) or None
