from voxmesh import text


def test_wer_counts_substitutions_insertions_and_deletions():
    assert text.wer("the cat sat", "the cat sat") == 0
    assert text.wer("the cat sat", "The cat, sat!") == 0
    assert text.wer("the cat sat", "the dog sat") == 1 / 3
    assert text.wer("the cat sat", "the cat sat down") == 1 / 3
    assert text.wer("the cat sat", "cat sat") == 1 / 3
    assert text.wer("", "") == 0 and text.wer("", "x") == 1


def test_agreed_prefix_keeps_the_current_spelling():
    assert text.agreed_prefix("and so my", "And so, my fellow") == "And so, my"
    assert text.agreed_prefix("ask not", "and so") == ""
    assert text.agreed_prefix("", "and so") == ""


def test_extends_needs_more_words_and_the_same_start():
    assert text.extends("and so my", "And so,")
    assert not text.extends("and so", "and so")
    assert not text.extends("and then my", "and so")


def test_words_are_found_in_every_script_and_unspaced_scripts_count_per_character():
    assert text.words("Привет, мир!") == ["привет", "мир"]
    assert text.words("你好世界") == ["你", "好", "世", "界"]
    assert text.words("こんにちは") == list("こんにちは")
    assert text.words("Café déjà vu, don't") == ["café", "déjà", "vu", "don't"]
    assert text.wer("Привет мир", "Привет всем") == 0.5
