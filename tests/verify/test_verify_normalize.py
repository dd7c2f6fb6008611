"""Normalisation for checking: what a reader says for a text."""

from __future__ import annotations

import pytest

from mediamill.text.normalize import normalize, spans


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Hello, World!", "hello world"),
        ("Mr. Okafor sold 320 apples.", "mister okafor sold three hundred and twenty apples"),
        ("In 1999 and in 2007.", "in nineteen ninety nine and in two thousand and seven"),
        ("It cost $45.", "it cost forty five dollars"),
        ("It cost $1.", "it cost one dollar"),
        ("A $2.5 million loss.", "a two point five million dollars loss"),
        ("He paid £20.", "he paid twenty pounds"),
        ("Only $5.99 today", "only five dollars ninety nine cents today"),
        ("Up 12% on the year", "up twelve percent on the year"),
        ("She came 3rd on the 21st.", "she came third on the twenty first"),
        ("Meet at 7:30 p.m.", "meet at seven thirty p m"),
        ("At 9:05 or 10:00", "at nine oh five or ten o'clock"),
        ("Rock & roll + jazz @ home", "rock and roll plus jazz at home"),
        ("10,000 coins and 4,810 metres", "ten thousand coins and four thousand eight hundred and ten metres"),
        ("My brother-in-law's shop", "my brother in law's shop"),
        ("\u201cDon\u2019t,\u201d she said.", "don't she said"),
        ("'Tis the baker's 'best' bread", "tis the baker's best bread"),
        ("The 1990s and the '60s", "the nineteen nineties and the sixties"),
        ("No. 5, St. Paul, on Main St.", "number five saint paul on main st"),
        ("No, thank you.", "no thank you"),
        ("forty-seven species", "forty seven species"),
        ("Pi is 3.14", "pi is three point one four"),
        ("", ""),
        ("... !!! ???", ""),
    ],
)
def test_english(text, words):
    assert normalize(text) == words.split()


def test_numbers_keep_every_reading():
    """Engines read numbers differently; each reading is a span's alternative."""
    (year,) = spans("1999")
    assert year.words == ("nineteen", "ninety", "nine")
    assert ("nineteen", "hundred", "ninety", "nine") in year.readings
    assert ("one", "thousand", "nine", "hundred", "ninety", "nine") in year.readings
    (money,) = spans("$45")
    assert ("dollar", "forty", "five") in money.readings  # how espeak-ng (Piper) reads it
    (count,) = spans("320")
    assert count.readings == (("three", "hundred", "and", "twenty"), ("three", "hundred", "twenty"))
    (word,) = spans("apples")
    assert word.readings == (("apples",),)


def test_comma_grouped_numbers_are_not_years():
    assert normalize("1,999") == "one thousand nine hundred and ninety nine".split()


def test_lexicon_mapping_replaces_words_with_spoken_forms():
    say = {"Nguyen": "win", "SQL": "sequel", "Dr": "doctor"}
    assert normalize("Ask Nguyen about sql.", say=say) == "ask win about sequel".split()


def test_lexicon_callable_and_spoken_forms_are_normalised_too():
    def say(word: str) -> str | None:
        return {"gr8": "great", "b4": "before 2"}.get(word.lower())

    assert normalize("A gr8 day, b4 noon", say=say) == "a great day before two noon".split()


def test_lexicon_none_keeps_the_word():
    assert normalize("Keep it", say=lambda w: None) == ["keep", "it"]


def test_other_languages_read_numbers_in_that_language():
    assert normalize("Er zahlte 45 Euro & mehr", language="de") == [
        "er",
        "zahlte",
        "fünfundvierzig",
        "euro",
        "und",
        "mehr",
    ]
    assert normalize("Il a 3 chats", language="fr-FR") == ["il", "a", "trois", "chats"]
    assert normalize("Uno más 12%", language="es") == ["uno", "más", "doce", "por", "ciento"]


def test_unicode_letters_survive():
    assert normalize("Café Zoë, naïve") == ["café", "zoë", "naïve"]
