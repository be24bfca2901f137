import pytest

from voxmesh.services.llm.engines.transformers.guard import check, divergence, normalise

TRANSCRIPT = "um so we we should uh meet at three thirty on the twenty first with about twenty five people"


def test_a_faithful_clean_up_passes():
    output = "So we should meet at 3:30 on the 21st with about 25 people."
    verdict = check(TRANSCRIPT, output, threshold=0.3)
    assert not verdict.guarded and verdict.reason == ""
    assert verdict.divergence <= 0.15, "only the ordinal differs"


def test_an_output_that_invents_words_is_guarded_saying_why():
    output = "So we should meet the board at 3:30 on Friday to approve the budget with about 25 people."
    verdict = check(TRANSCRIPT, output, threshold=0.3)
    assert verdict.guarded and verdict.divergence > 0.3
    assert "guard threshold 0.3" in verdict.reason and "rule-based clean-up" in verdict.reason


def test_an_answer_instead_of_a_clean_up_is_guarded():
    assert check("what time is it in tokyo", "It is currently 9 PM in Tokyo, Japan.", threshold=0.3).guarded


def test_the_threshold_decides():
    output = "So we should meet at 3:30 on the 21st with 25 people."  # "about" dropped
    score = divergence(TRANSCRIPT, output)
    assert check(TRANSCRIPT, output, threshold=score).guarded is False
    assert check(TRANSCRIPT, output, threshold=score - 0.01).guarded is True


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("Um, I I think so.", ["i", "think", "so"]),
        ("twenty five thousand", ["25000"]),
        ("25,000", ["25000"]),
        ("two hundred and five people and dogs", ["205", "people", "and", "dogs"]),
        ("nineteen eighty four", ["1984"]),
        ("one two three", ["1", "2", "3"]),
        ("three point five percent", ["3", "5", "percent"]),
        ("3.5%", ["3", "5", "percent"]),
    ],
)
def test_normalisation(text, normalised):
    assert normalise(text) == normalised


def test_an_empty_transcript():
    assert divergence("", "") == 0.0
    assert divergence("um", "") == 0.0
    assert check("um", "Hello there, friend.", threshold=0.3).guarded


@pytest.mark.parametrize(
    ("transcript", "output"),
    [
        ("Привет, как дела сегодня?", "Здравствуйте, чем могу помочь вам сегодня?"),
        ("今天天气很好。", "我是一个语言模型\uff0c无法回答。"),
    ],
)
def test_the_guard_sees_words_outside_the_latin_alphabet(transcript, output):
    assert divergence(transcript, transcript) == 0.0
    assert check(transcript, output, 0.3).guarded, "an unrelated output in Cyrillic or Chinese is caught"


def test_an_output_where_the_transcript_has_no_words_is_guarded():
    assert check("...", "Here is a poem about the sea.", 0.3).guarded
