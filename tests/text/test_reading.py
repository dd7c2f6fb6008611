"""Text prepared for reading: what real books hold, as the engine is to be given it, and what Piper then says."""

from __future__ import annotations

import sys

import pytest

from mediamill.text.reading import prepare, roman
from tests.helpers.paths import ROOT

# (manuscript text, what an espeak-ng engine is given). Each is a form a real book holds (the corpus's
# sentences in tests/data/reading/cases.tsv), most with the misreading that Piper made of it before.
ESPEAK_CASES = [
    # punctuation clusters and dashes: espeak said "exclamation", "colon", "dot"
    ("his final breath—O Father!—chiefly known", "his final breath, O Father! chiefly known"),
    ("“Queequeg!—in the name of goodness, Queequeg, wake!”", "“Queequeg! in the name of goodness, Queequeg, wake!”"),
    ('—"The Spouter Inn:—Peter Coffin.”', '"The Spouter Inn: Peter Coffin.”'),
    ("the end.—Then he", "the end. Then he"),
    ("Well?—No!—Yes;—maybe", "Well? No! Yes; maybe"),
    ("he said--and then", "he said, and then"),
    (
        "Upon the reformation in the reign of William III., the price",
        "Upon the reformation in the reign of William the Third, the price",
    ),
    # ellipses ran words together ("waitand")
    ("wait…and", "wait, and"),
    ("wait... and so", "wait, and so"),
    # scene breaks and note markers are not words
    ("* * *", ""),
    ("*Since the above was written", "Since the above was written"),
    # numbers in their reading
    ("from 1850–1860", "from eighteen fifty to eighteen sixty"),
    ("in 1850 he", "in eighteen fifty he"),
    ("the 1850s", "the eighteen fifties"),
    ("1500 men", "1500 men"),  # a count, not a year
    ("No. 7", "Number seven"),
    ("see p. 42 and pp. 10-20", "see page forty two and pages ten to twenty"),
    ("Ch. IV", "Chapter four"),
    ("CHAPTER XII", "chapter twelve"),
    ("Henry VIII and George III", "Henry the Eighth and George the Third"),
    ("World War II", "World War two"),  # a number, not a monarch's ordinal
    ("In Book I, the hero", "In Book one, the hero"),
    ("the 2d and 3d regiments", "the second and third regiments"),
    ("the 275th lay and the 1000th", "the two hundred and seventy fifth lay and the one thousandth"),
    # money
    ("£5 and $1,000 and $3.50", "five pounds and one thousand dollars and three dollars and fifty cents"),
    ("5s. 6d.", "five shillings and six pence"),
    ("about £1 10s. 6d. a week", "about one pound, ten shillings and six pence a week"),
    ("nearly 6s.3d.", "nearly six shillings and three pence"),
    ("7 1/3d.", "seven and one third pence"),
    ("£1:13:9", "one pound, thirteen shillings and nine pence"),
    ("added £31:18: 6 1/6 to it", "added thirty one pounds, eighteen shillings and six and one sixth pence to it"),
    ("sometimes £ 3:19s, and", "sometimes three pounds and nineteen shillings, and"),
    # fractions
    ("3 1/2 yards", "three and a half yards"),
    ("½ a crown", "a half a crown"),
    ("11-12ths fine", "eleven twelfths fine"),
    # abbreviations, initials, lists, emphasis
    ("St. Paul lived on Baker St. in London", "Saint Paul lived on Baker Street in London"),
    ("cloth, &c., and", "cloth, et cetera, and"),
    ("J. R. R. Tolkien", "J R R Tolkien"),
    ("I. A Fast-Fish belongs to the party fast to it.", "One. A Fast-Fish belongs to the party fast to it."),
    ("[VIII] Then Last Of All", "[eight] Then Last Of All"),
    ("I will NOT go, HUMPH!", "I will NOT go, humph!"),
    (
        "THE WHALE NEVER FIGURED IN ANY GRAND IMPOSING WAY? In one",
        "the whale never figured in any grand imposing way? In one",
    ),
    ("the BBC and the USA", "the BBC and the USA"),
    ("21 Guilders / mark", "21 Guilders, mark"),
]

UNCHANGED = [
    "The lamp was lit at dusk.",
    "Said I, and left.",
    "It was the book I bought, and the act I performed.",
    "Part of the plan",
    "The Book I bought was red.",
    "At 5 p.m. we left.",
    "L. of G.'s Purport",  # a title's initials, not fifty
    "Said I. Then we left.",
    "Mr",  # no full stop: not the abbreviation
    "It was 4:30 in the morning.",
]


@pytest.mark.parametrize(("text", "spoken"), ESPEAK_CASES)
def test_real_book_forms_are_prepared_for_an_espeak_engine(text, spoken):
    assert prepare(text, "espeak") == spoken


def test_plain_keeps_the_text_and_layout_only_mends_what_no_reader_should_voice():
    text = "In 1850—wait…and see No. 7 * * * £5"
    assert prepare(text, "plain") == text
    assert prepare(text, "layout") == "In 1850, wait, and see No. 7 £5"
    with pytest.raises(ValueError, match="unknown reading style"):
        prepare(text, "shouting")


def test_phoneme_blocks_from_the_lexicon_are_left_alone():
    assert prepare("Say [[ hˈɛloʊ—wˈɜːld ]] in 1850", "espeak") == "Say [[ hˈɛloʊ—wˈɜːld ]] in eighteen fifty"


@pytest.mark.parametrize("text", [*UNCHANGED, "Mr. Smith"])
def test_preparation_is_idempotent(text):
    once = prepare(text, "espeak")
    assert prepare(once, "espeak") == once


@pytest.mark.parametrize("text", UNCHANGED)
def test_ordinary_text_is_left_as_it_is(text):
    assert prepare(text, "espeak") == text.replace("Mr", "Mr")


def test_roman_numerals():
    assert [roman(x) for x in ("I", "IV", "XIV", "MCMLXXXIV", "IIII", "IC", "", "ABC")] == [
        1,
        4,
        14,
        1984,
        None,
        None,
        None,
        None,
    ]


@pytest.mark.timeout(60)
def test_long_hostile_text_is_prepared_in_linear_time():
    text = ("—" * 5000 + "." * 5000 + "1/" * 5000 + "£1:" * 5000 + "I. " * 5000 + "* " * 5000) * 4
    assert isinstance(prepare(text, "espeak"), str)


def test_the_real_book_corpus_has_nothing_voiced_that_is_not_a_word_once_prepared():
    """Piper's own front end on every corpus sentence: no punctuation names, Roman numerals read as
    "roman N", currency before amount, old ordinals as letters or years as cardinals once prepared."""
    pytest.importorskip("piper")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import reading as bench_reading
    finally:
        sys.path.remove(str(ROOT / "bench"))
    cases = bench_reading.read_cases()
    assert len(cases) >= 300 and len({c["book"] for c in cases}) >= 6
    raw, prepared = bench_reading.measure(cases)
    assert raw.total >= 50  # the corpus holds what Piper misreads as written
    faults = +(prepared.spoken_names + prepared.misreads)
    assert not faults, faults
