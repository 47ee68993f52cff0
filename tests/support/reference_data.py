"""A book-length source with dialogue and a fragment file of near-verbatim quotes of known
spans, generated deterministically (seeded), for the reference import tests."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

NAMES = ["Marta", "Tobias", "Ines", "Rafael", "Lucia", "Otto", "Beatriz", "Henrik", "Clara",
         "Dmitri", "Yara", "Samuel"]
PLACES = ["the mill", "the harbour", "the old library", "the orchard", "the station",
          "the bakery", "the river bank", "the chapel", "the market", "the lighthouse"]
VERBS = ["remembered", "noticed", "decided", "admitted", "explained", "wondered", "insisted",
         "suspected", "promised", "discovered", "argued", "confessed"]
OBJECTS = ["a letter with no signature", "the broken compass", "her father's ledger",
           "a map drawn in pencil", "the key to the cellar", "a photograph of the storm",
           "the unpaid invoice", "a jar of copper coins", "the second notebook",
           "a ticket for the night train"]
ADVERBS = ["quietly", "reluctantly", "suddenly", "carefully", "stubbornly", "happily",
           "nervously", "slowly", "bluntly", "gently"]
FEELINGS = ["tired", "certain", "afraid", "curious", "angry", "relieved", "restless",
            "hopeful", "ashamed", "proud"]


@dataclass(frozen=True)
class Quote:
    external_id: str
    content: str  # as the file has it (near-verbatim)
    start: int  # the true span in the source
    end: int
    kind: str


def _sentence(rng: random.Random, n: int) -> str:
    return (f"{rng.choice(NAMES)} {rng.choice(ADVERBS)} {rng.choice(VERBS)} that "
            f"{rng.choice(OBJECTS)} was hidden near {rng.choice(PLACES)} on day {n}.")


def _dialogue(rng: random.Random, n: int) -> tuple[str, str, str]:
    ask = (f"“Why did you go back to {rng.choice(PLACES)} after {n} nights, "
           f"{rng.choice(NAMES)}?”")
    said = f" {rng.choice(NAMES)} asked, {rng.choice(ADVERBS)} folding {rng.choice(OBJECTS)}. "
    answer = f"“Because I was {rng.choice(FEELINGS)} and it was the {n}th time I’d tried.”"
    return ask, said, answer


def book(seed: int = 7, min_chars: int = 150_000) -> tuple[str, list[tuple[int, int, str]]]:
    """The text and its marked passages: (start, end, kind) of sentences and dialogues."""
    rng = random.Random(seed)
    parts: list[str] = []
    marks: list[tuple[int, int, str]] = []
    length, n = 0, 0
    while length < min_chars:
        n += 1
        paragraph: list[str] = []
        for _ in range(rng.randint(3, 6)):
            n += 1
            paragraph.append(_sentence(rng, n))
        text = " ".join(paragraph)
        start = length
        # the first and the last sentence of the paragraph are marked
        first = paragraph[0]
        marks.append((start, start + len(first), "sentence"))
        parts.append(text)
        length += len(text)
        ask, said, answer = _dialogue(rng, n)
        line = "\n\n" + ask + said + answer
        dialogue_start = length + 2
        marks.append((dialogue_start, dialogue_start + len(ask) + len(said) + len(answer),
                      "dialogue"))
        parts.append(line + "\n\n")
        length += len(line) + 2
    return "".join(parts), marks


def _straight(text: str) -> str:
    return text.replace("“", '"').replace("”", '"').replace("’", "'")


def quotes(text: str, marks: list[tuple[int, int, str]], count: int = 40,
           seed: int = 11) -> list[Quote]:
    """`count` near-verbatim quotes of marked passages, in five kinds by turns: exact, curly
    quotes made straight, initial capital dropped, a word elided, dialogue turns joined."""
    rng = random.Random(seed)
    sentences = [m for m in marks if m[2] == "sentence"]
    dialogues = [m for m in marks if m[2] == "dialogue"]
    rng.shuffle(sentences)
    rng.shuffle(dialogues)
    made: list[Quote] = []
    for number in range(count):
        kind = ["exact", "straight", "lower", "elided", "missing", "joined"][number % 6]
        if kind in ("straight", "joined"):
            start, end, _ = dialogues.pop()
        else:
            start, end, _ = sentences.pop()
        passage = text[start:end]
        if kind == "straight":
            content = _straight(passage)
        elif kind == "lower":
            content = passage[0].lower() + passage[1:]
        elif kind in ("elided", "missing"):
            words = passage.split(" ")
            gap = " ... " if kind == "elided" else " "
            cut = len(words) // 2
            content = " ".join(words[:cut]) + gap + " ".join(words[cut + 1:])
        elif kind == "joined":
            ask_end = passage.index("”") + 1
            answer_start = passage.index("“", ask_end)
            content = _straight(passage[:ask_end] + " " + passage[answer_start:])
        else:
            content = passage
        made.append(Quote(f"FRAG_REF_{number + 1:03d}", content, start, end, kind))
    return made


def mmos_yaml(items: list[Quote], category: str = "Cognitive") -> str:
    """A multi-document MMOS v5 YAML file of the quotes."""
    documents = []
    for number, quote in enumerate(items):
        documents.append(
            f"id: {json.dumps(quote.external_id)}\ncategory: {json.dumps(category)}\n"
            f"source: \"The generated book\"\nlocation: \"Passage {number}\"\n"
            f"type: \"direct_quote\"\nrelevance: {1 + number % 10}\n"
            f"content: {json.dumps(quote.content)}\n"
            f"context: |\n  Passage {number} of the book.\n"
            f"tags: [\"test\", {json.dumps(quote.kind)}]\n"
            f"metadata: {{confidence: 0.9, clarity: 5, depth: 4}}\n")
    return "---\n" + "---\n".join(documents)
