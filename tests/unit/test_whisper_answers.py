"""What the whisper engine reads in Whisper's text: loops, an answer that says the lead or the utterance
before it again or copies a run of the text before it, an answer longer than its audio can hold."""

from __future__ import annotations

from voxmesh.services.asr.engines.whisper_answers import (
    copies,
    echoes,
    last_sentence,
    lead_said_first,
    looping,
    repetitive,
    says_again,
    says_lead_again,
    says_too_much,
)


def test_an_answer_that_says_the_lead_again_is_taken_for_a_repeat():
    assert says_lead_again("", "Front, center.")
    assert says_lead_again("Front, center. Front, left.", "Front. Center."), "its first words are the lead's last"
    assert says_lead_again("A cold wind blew. Turn left here.", "She painted it. A cold wind blew."), "said again whole"
    assert not says_lead_again("Rear, right.", "Rear, center, rear, right, side, left."), "a list says its words again"
    assert not says_lead_again(
        "Ask what you can do for your country.", "And so my fellow Americans, ask not what your country can do for you."
    )
    assert not says_lead_again("Turn left at the old mill.", "Please send the report on Tuesday morning.")


def test_an_answer_that_echoes_the_utterance_before_it_is_told_from_one_that_goes_on():
    train = "Our train left twenty minutes late, because of a signal out here in the middle."
    assert says_again("The train left twenty minutes late, because of a signal out here in the middle.", train)
    assert says_again("Left twenty minutes late because of a signal.", train), "a piece of it, in order"
    assert not says_again("Minutes late, twenty left the train.", train), "the same words out of order"
    assert not says_again("She painted the kitchen a pale shade of green.", train)
    assert not says_again("Rear, right.", "Rear, right."), "too short to tell from a list's words"
    assert not says_again(
        "Ask what you can do for your country.", "And so my fellow Americans, ask not what your country can do for you."
    )
    assert not says_again("Side, left, side, right, front, right, front, left, rear, left.", "Side, right.")
    assert (
        last_sentence("Seven small boats waited. A cold wind blew across the square.")
        == "A cold wind blew across the square."
    )
    assert says_too_much("A cold wind flew across the park. " * 2, seconds=1.15), "14 words in 1.15 s"
    assert not says_too_much("A cold wind flew across the park.", seconds=1.15)


def test_an_answer_that_copies_a_run_of_the_text_before_it_is_told_from_one_that_says_a_few_words_again():
    first = "at all wind blew across the end the market's way up."
    # Heard two utterances later in white noise at 10 dB (fidelity.py --seed 2): its own first words, then a copy
    echo = "The end the nearest wind back in the front blew across the end the market's way up."
    assert copies(echo, first)
    assert not copies("The end the nearest wind back in the front blew across the end the.", first), "five in a row"
    assert not copies(
        "Ask what you can do for your country.", "And so my fellow Americans, ask not what your country can do for you."
    )
    second = "She didn't look at your nail shade of green last wind."
    assert echoes(echo, "", [first, second]), "a copy of the lead's first utterance, not its last"
    assert echoes(echo, f"{first} {second}", []), "a copy of the stream's older text"
    assert echoes("She didn't look at your nail.", "Older text. " + second, []), "the utterance before, said again"
    assert not echoes("The engineer had cleaned out the pump.", first, [second])
    assert not echoes("Rear left, rear right, side left.", "", ["Front left, front right, side left, side right."])


def test_an_answer_that_loops_is_not_taken():
    assert repetitive("front left, " * 12)
    assert not repetitive("And so my fellow Americans, ask not what your country can do for you.")
    assert looping("front left, " * 12, seconds=4.0), "24 words in 4 s, repeating: a loop"
    assert not looping("front left, " * 12, seconds=20.0), "24 words in 20 s: a list read aloud"


def test_the_lead_s_last_words_an_answer_says_first_and_its_rest_as_written():
    # alsa_channels in white noise at 10 dB: after a lead ending "Front. Left.", the utterance "front right"
    assert lead_said_first("Front. Left. Front. Right.", "Front. Center. Front. Left.") == (
        ["front", "left"],
        "Front. Right.",
    )
    assert lead_said_first("Right. Side, left.", "Rear, right.") == (["right"], "Side, left.")
    assert lead_said_first("Side, left. Side, right.", "Front. Side, left. Side, right.") == (
        ["side", "left", "side", "right"],
        "",
    ), "the most of the lead's last words it starts with"
    assert lead_said_first("Center.", "Front.") == ([], "Center.")
    assert lead_said_first("", "Front.") == ([], "")
