"""The "mmos" models read the subject from the prompt as a real model would
(workers/local_models.py)."""

from __future__ import annotations

import json
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from domain.prompt import build_messages
from domain.subjects import Subject
from workers.local_models import _answer

CHUNK = ("the river was everything to me, I believe.\n\n"
         "Interviewer: And your father? I think he was proud of you.\n\n"
         "Marta Silva: My father fixed boats and I spent every summer in his workshop.\n\n"
         "Rui: I think my father was proud of the boats I built.")


def answered(messages: list[dict[str, str]]) -> list[str]:
    from litellm.types.utils import ModelResponse

    response = _answer("mmos/rules-fast", messages, ModelResponse())
    content = response.choices[0].message.content  # type: ignore[union-attr]
    return [fragment["quote"] for fragment in json.loads(content)["fragments"]]


def test_the_subject_and_the_opening_speaker_come_from_the_prompt() -> None:
    subject = Subject("Marta Silva", ("Marta",))

    framed = answered(build_messages(CHUNK, language="en", source_type="interview",
                                     subject=subject, opening_speaker="Marta Silva"))
    unframed = answered(build_messages(CHUNK, language="en", source_type="interview"))

    assert framed == ["the river was everything to me, I believe.",
                      "My father fixed boats and I spent every summer in his workshop."]
    assert unframed == [*framed, "I think my father was proud of the boats I built."]
    other = answered(build_messages(CHUNK, language="en", source_type="interview",
                                    subject=Subject("Interviewer")))
    assert other == ["I think he was proud of you."]
