"""ShareGPT writer: `ShareGPT_V3_unfiltered_cleaned_split.json`, text-only conversations.

Demo: small talk and arithmetic, ids `<base>_<chunk>` as FastChat splits long conversations. Planted:
a leading `gpt` turn (stripped, kept), non-alternating turns, an empty turn, a literal `<image>`.

Volume: 94,145 records of 1-7 turn pairs with multilingual filler; planted records from a leading
`gpt` or trailing `human` turn (kept) to unknown roles, empty turns and gpt-only conversations.
"""

from __future__ import annotations

import random
from typing import Any

from datamix.schema import DropReason
from datamix.sources.sharegpt import FILE
from datamix.synth.bulk import Bulk, js, paragraph, sentence
from datamix.synth.scene import ALNUM, World, few

SOURCE = "sharegpt"

_TALK = (
    ("Hi! How are you today?", "I'm doing well, thank you for asking. How can I help you today?"),
    (
        "Can you recommend a good book?",
        'Sure! "The Hobbit" by J. R. R. Tolkien is a classic adventure that many people enjoy.',
    ),
    ("What is the capital of France?", "The capital of France is Paris."),
    (
        "Give me a tip for staying focused.",
        "Try working in short blocks of 25 minutes with a 5-minute break after each one.",
    ),
    (
        "Write a haiku about rain.",
        "Soft rain on the roof,\nthe garden drinks in silence,\nclouds drift slowly east.",
    ),
    ("How many days are there in a week?", "There are seven days in a week."),
    (
        "What should I cook for dinner?",
        "How about a simple vegetable stir-fry with rice? It is quick and healthy.",
    ),
    ("Tell me a fun fact.", "Octopuses have three hearts and blue blood."),
    ("Thanks for your help!", "You're welcome! Let me know if there is anything else I can do."),
    ("What is the opposite of hot?", "The opposite of hot is cold."),
)


def _arith(rng: random.Random) -> list[tuple[str, str]]:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op = rng.choice("+-*")
    res = a + b if op == "+" else a - b if op == "-" else a * b
    q = rng.choice(
        ("What is {a} {op} {b}?", "Can you compute {a} {op} {b} for me?", "Please calculate {a} {op} {b}.")
    )
    turns = [(q.format(a=a, op=op, b=b), f"{a} {op} {b} = {res}.")]
    if rng.random() < 0.4:
        c = rng.randint(1, 20)
        turns.append((f"And if you add {c} to that?", f"{res} + {c} = {res + c}."))
    return turns


def _sharegpt_turns(rng: random.Random) -> list[tuple[str, str]]:
    if rng.random() < 0.5:
        return _arith(rng)
    return rng.sample(_TALK, rng.randint(1, 3))


def _as_turns(qas: list[tuple[str, str]]) -> list[dict[str, str]]:
    out = []
    for q, a in qas:
        out += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    return out


#: The demo profile's size at each scale (conversation records; `datamix.synth.demo`).
DEMO_SIZES = {"tiny": 16, "small": 300}


def write_demo(world: World, n: int) -> int:
    rng = world.rng(SOURCE)
    bases: set[str] = set()

    def new_id() -> str:
        while True:
            base = "".join(rng.choice(ALNUM) for _ in range(7))
            if base not in bases:
                bases.add(base)
                return base

    records: list[dict[str, Any]] = []
    while len(records) < n:
        base = new_id()
        records.append({"id": f"{base}_0", "conversations": _as_turns(_sharegpt_turns(rng))})
        if rng.random() < 0.1:  # a long conversation split by FastChat into chunks
            records.append({"id": f"{base}_1", "conversations": _as_turns(_sharegpt_turns(rng))})
    k = few(n, 100)
    bad: list[dict[str, Any]] = []
    for _ in range(k):  # leading gpt turn: stripped by the normalizer, the rest kept
        turns = [{"from": "gpt", "value": "Hello! What can I do for you?"}, *_as_turns(_arith(rng))]
        bad.append({"id": f"{new_id()}_0", "conversations": turns})
    for _ in range(k):  # not alternating
        q, a = rng.choice(_TALK)
        turns = [
            {"from": "human", "value": q},
            {"from": "human", "value": "Hello?"},
            {"from": "gpt", "value": a},
        ]
        bad.append({"id": f"{new_id()}_0", "conversations": turns})
    for _ in range(k):  # an empty turn
        bad.append({"id": f"{new_id()}_0", "conversations": _as_turns([(rng.choice(_TALK)[0], "")])})
    for _ in range(k):  # a literal <image> in text-only data
        turns = _as_turns(
            [("What does the <image> tag do in HTML?", "HTML has no <image> tag; images use <img>.")]
        )
        bad.append({"id": f"{new_id()}_0", "conversations": turns})
    drops = (DropReason.NOT_ALTERNATING, DropReason.EMPTY_TURN, DropReason.IMAGE_TOKEN_IN_TEXT)
    world.write_planted(SOURCE, FILE, rng, records, bad, drops, k)
    return len(records)


# --------------------------------------------------------------------------------------------
# volume profile


def write_volume(w: Bulk) -> None:
    src = SOURCE
    rng = w.rng(src)
    n_rec = w.n("sharegpt_records")
    pool = [js(paragraph(rng, rng.randint(100, 3200), ml=True)) for _ in range(3000)]
    qs = [js(sentence(rng, 5, 25, ml=True)[:-1] + "?") for _ in range(2000)]
    bad_kinds = [
        "leading_gpt",
        "not_alternating",
        "empty_turn",
        "image_token",
        "missing_conv",
        "unknown_role",
        "gpt_only",
        "trailing_human",
    ]
    per = w.few(40)
    slots = rng.sample(range(1, n_rec), per * len(bad_kinds))
    kind_at = {p: bad_kinds[j // per] for j, p in enumerate(slots)}
    o = w.out(src, FILE)
    o.w("[")
    base, chunk = "", 0
    valid = 0
    for k in range(n_rec):
        if chunk == 0 or rng.random() < 0.5:  # 94,145 entries of ~50K base conversations
            base, chunk = "".join(rng.choice(ALNUM) for _ in range(7)), 0
        rid = f"{base}_{chunk}"
        chunk += 1
        n_pairs = rng.randint(1, 7)
        turns = []
        for _ in range(n_pairs):
            turns.append(f'{{"from": "human", "value": {qs[rng.randrange(len(qs))]}}}')
            turns.append(f'{{"from": "gpt", "value": {pool[rng.randrange(len(pool))]}}}')
        kind = kind_at.get(k)
        model = ', "model": ""' if rng.random() < 0.2 else ""
        if kind == "leading_gpt":
            turns.insert(0, '{"from": "gpt", "value": "Hello! How can I help you today?"}')
            valid += 1
        elif kind == "trailing_human":
            turns.append(f'{{"from": "human", "value": {qs[0]}}}')
            valid += 1
        elif kind == "not_alternating":
            turns.insert(1, '{"from": "human", "value": "Hello?"}')
            w.expect_drop(src, DropReason.NOT_ALTERNATING)
        elif kind == "empty_turn":
            turns[1] = '{"from": "gpt", "value": ""}'
            w.expect_drop(src, DropReason.EMPTY_TURN)
        elif kind == "image_token":
            turns[0] = '{"from": "human", "value": "What does the <image> tag do in HTML?"}'
            w.expect_drop(src, DropReason.IMAGE_TOKEN_IN_TEXT)
        elif kind == "unknown_role":
            turns[0] = '{"from": "system", "value": "You are ChatGPT."}'
            w.expect_drop(src, DropReason.UNKNOWN_ROLE)
        elif kind == "gpt_only":
            turns = ['{"from": "gpt", "value": "I am sorry, I cannot do that."}']
            w.expect_drop(src, DropReason.EMPTY_CONVERSATION)
        else:
            valid += int(kind is None)
        if kind == "missing_conv":
            o.w(("" if k == 0 else ",\n") + f'{{"id": "{rid}"{model}}}')
            w.expect_drop(src, DropReason.MISSING_FIELD)
        else:
            o.w(
                ("" if k == 0 else ",\n") + f'{{"id": "{rid}"{model}, "conversations": [{", ".join(turns)}]}}'
            )
    w.finish(src, {o: "]"}, valid, w.sc(40_688))
