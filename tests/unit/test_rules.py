import pytest

from voxmesh.services.llm.engines.rules import clean_up


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("um so uh we should er go", "So we should go."),
        ("I I I think the the plan works", "I think the plan works."),
        ("we can we can go now", "We can go now."),
        ("th- the results are in", "The results are in."),
        ("i think i'm ready. are you", "I think I'm ready. Are you."),
        ("done already!", "Done already!"),
        ("hmm.", ""),
        ("", ""),
        ("so, um, what now?", "So, what now?"),
        ("it works um.", "It works."),
    ],
)
def test_clean_up(raw, clean):
    assert clean_up(raw) == clean


def test_clean_up_keeps_every_non_filler_word():
    raw = "And so my fellow Americans ask not what your country can do for you"
    assert clean_up(raw).rstrip(".").split() == raw.split()
