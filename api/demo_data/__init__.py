"""Fictional sample interviews for the demo, shaped like `createSource` input."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

_HERE = Path(__file__).resolve().parent


class Sample(TypedDict, total=False):
    """One demo source; keys match the GraphQL `createSource` input fields."""

    sourceCode: str
    title: str
    sourceType: str
    language: str
    author: str
    content: str
    contentFormat: str
    subject: dict[str, object]


# (file, source code, language, author): the title is the file's first "# " heading.
_CATALOG: tuple[tuple[str, str, str, str], ...] = (
    ("interview_en.md", "DEMO_INT_EN_001", "en", "Margaret Lindqvist"),
    ("interview_pt.md", "DEMO_INT_PT_001", "pt-BR", "Cláudia Barreto"),
)


def _split_title(markdown: str) -> tuple[str, str]:
    # The heading is metadata, not something the interviewee said: keep it out of the content.
    first, _, rest = markdown.partition("\n")
    if not first.startswith("# "):
        raise ValueError("demo sample must start with a '# ' title line")
    return first[2:].strip(), rest.strip("\n") + "\n"


# A transcript: WebVTT with two labelled speakers; the guest is the clone's subject.
TRANSCRIPT = ("podcast_en.vtt", "DEMO_POD_EN_001", "Long Spans, episode 12: the mistake notebook",
              "Margaret Lindqvist")


def load_samples() -> list[Sample]:
    """The demo interviews (plain text), in a fixed order (English first)."""
    samples: list[Sample] = []
    for filename, code, language, author in _CATALOG:
        markdown = (_HERE / filename).read_text(encoding="utf-8")
        title, content = _split_title(markdown)
        samples.append(
            Sample(
                sourceCode=code,
                title=title,
                sourceType="interview",
                language=language,
                author=author,
                content=content,
            )
        )
    return samples


def load_transcript() -> Sample:
    """The demo podcast transcript (WebVTT), with its subject."""
    filename, code, title, subject = TRANSCRIPT
    return Sample(
        sourceCode=code, title=title, sourceType="podcast", language="en", author=subject,
        content=(_HERE / filename).read_text(encoding="utf-8"), contentFormat="VTT",
        subject={"name": subject, "aliases": ["Margaret"]})
