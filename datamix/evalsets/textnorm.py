"""Question normalisation as the benchmarks' own evaluation code normalises text.

`vqa` reproduces the official VQA evaluation (`vqaEval.py` of github.com/GT-Vision-Lab/VQA, also used
by VizWiz, TextVQA and LLaVA's `m4c_evaluator.EvalAIAnswerProcessor`): lower case, newlines and tabs
to spaces, `processPunctuation` (punctuation removed or replaced by a space, a period kept between
digits, commas inside numbers dropped), `processDigitArticle` (number words to digits, articles
a/an/the dropped, contractions restored to their apostrophe form). We apply it to questions, so that
"Is there a dog?" and "is there a dog" are the same question.

`basic` (multiple-choice benchmarks whose evaluation compares option letters, not text: MMBench,
SEED-Bench, ScienceQA, MME, MM-Vet, LLaVA-Bench): lower case, whitespace collapsed, trailing
punctuation and surrounding quotes removed.
"""

from __future__ import annotations

import re

_CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "shant": "shan't",
    "shed": "she'd",
    "shes": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "somebodyd": "somebody'd",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someoned": "someone'd",
    "someonell": "someone'll",
    "someones": "someone's",
    "somethingd": "something'd",
    "somethingll": "something'll",
    "thats": "that's",
    "thered": "there'd",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "wed": "we'd",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "yall": "y'all",
    "youd": "you'd",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}
_MANUAL_MAP = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = {"a", "an", "the"}
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: the official pattern
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_PUNCT = [
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]


def process_punctuation(text: str) -> str:
    """vqaEval.processPunctuation."""
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or (re.search(_COMMA_STRIP, text) is not None):
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, re.UNICODE)


def process_digit_article(text: str) -> str:
    """vqaEval.processDigitArticle."""
    words = []
    for word in text.lower().split():
        word = _MANUAL_MAP.setdefault(word, word) if word in _MANUAL_MAP else word
        if word not in _ARTICLES:
            words.append(word)
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def vqa(text: str) -> str:
    """The VQA evaluation's answer normalisation, applied to a question."""
    text = text.replace("\n", " ").replace("\t", " ").strip().lower()
    return process_digit_article(process_punctuation(text))


def basic(text: str) -> str:
    return " ".join(text.lower().split()).strip(" \"'").rstrip(" .?!:;")


NORMALIZERS = {"vqa": vqa, "basic": basic}
