"""Reading fragment files: every accepted shape, the field mapping, every refusal with its
path and line (domain/reference_import.py)."""

from __future__ import annotations

import json

import pytest

from domain.errors import InvalidInput
from domain.model import Category, FragmentType
from domain.reference_import import ReferenceFormat, parse_reference

YAML = ReferenceFormat.MMOS_YAML
JSONL = ReferenceFormat.JSONL

EXAMPLE = '''id: "FRAG_ABC_007"
category: "Cognitive"
source: "Interview with the founder"
location: "Part 2, after the question about failure"
type: "direct_quote"
relevance: 8
content: "I never trusted a plan I couldn't explain to my grandmother."
context: |
  Asked how she evaluates strategy documents.
insight: |
  Prefers plans that survive plain-language explanation.
tags: ["decision_making", "simplicity"]
metadata: {confidence: 0.9, clarity: 5, depth: 4}
'''


def fragment(number: int, **fields: object) -> str:
    values = {"id": f"F{number}", "category": "COG", "content": f"Sentence number {number}."}
    values.update(fields)
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in values.items())


def issues_of(data: str, fmt: ReferenceFormat = YAML) -> list[tuple[str, str]]:
    with pytest.raises(InvalidInput) as refused:
        parse_reference(data, fmt)
    return [(".".join(issue.path), issue.message) for issue in refused.value.issues]


def test_a_single_document_maps_every_mmos_field() -> None:
    # When
    [record] = parse_reference(EXAMPLE, YAML)
    # Then
    assert record.external_id == "FRAG_ABC_007" and record.line == 1 and record.index == 0
    assert record.category is Category.COGNITIVE
    assert record.fragment_type is FragmentType.DIRECT_QUOTE
    assert record.content == "I never trusted a plan I couldn't explain to my grandmother."
    assert record.source_label == "Interview with the founder"
    assert record.location == "Part 2, after the question about failure"
    assert record.relevance == 8
    assert record.context == "Asked how she evaluates strategy documents."
    assert record.insight == "Prefers plans that survive plain-language explanation."
    assert record.tags == ("decision_making", "simplicity")
    assert record.metadata == {"confidence": 0.9, "clarity": 5, "depth": 4}
    assert record.raw["category"] == "Cognitive" and record.raw["type"] == "direct_quote"


def test_a_multi_document_stream_gives_one_record_per_document_with_its_line() -> None:
    data = "---\n" + fragment(1) + "---\n" + fragment(2) + "---\n"
    records = parse_reference(data, YAML)
    assert [(r.external_id, r.line) for r in records] == [("F1", 2), ("F2", 6)]


def test_a_yaml_list_and_a_fragments_key_are_read_item_by_item() -> None:
    listed = "- id: A\n  content: First one.\n- id: B\n  content: Second one.\n"
    wrapped = "fragments:\n  - id: A\n    content: First one.\n  - id: B\n    content: Two.\n"
    assert [(r.external_id, r.line) for r in parse_reference(listed, YAML)] == [
        ("A", 1), ("B", 3)]
    assert [(r.external_id, r.line) for r in parse_reference(wrapped, YAML)] == [
        ("A", 2), ("B", 4)]


def test_markdown_fenced_yaml_blocks_are_read_and_other_fences_skipped() -> None:
    data = ("# Notes\n\nSome prose.\n\n```yaml\n" + fragment(1) + "```\n\n```text\n"
            "id: NOT_ME\ncontent: no\n```\n\n~~~yml\n- id: L1\n  content: In a list.\n"
            "- id: L2\n  content: Also.\n~~~\n")
    records = parse_reference(data, YAML)
    assert [(r.external_id, r.line) for r in records] == [("F1", 6), ("L1", 17), ("L2", 19)]


def test_jsonl_reads_one_object_per_line_skipping_blank_lines() -> None:
    data = (json.dumps({"id": "J1", "content": "One.", "type": "paráfrase"}) + "\n\n"
            + json.dumps({"id": 7, "content": "Two.", "category": "Valores e Crenças",
                          "relevance": "6"}) + "\n")
    first, second = parse_reference(data, JSONL)
    assert (first.external_id, first.line, first.fragment_type) == (
        "J1", 1, FragmentType.PARAPHRASE)
    assert (second.external_id, second.line, second.category, second.relevance) == (
        "7", 3, Category.VALUES_BELIEFS, 6)
    assert first.category is Category.GENERAL  # absent category: general


def test_labels_are_read_in_any_case_code_or_portuguese() -> None:
    data = "".join("---\n" + fragment(i, category=label)
                   for i, label in enumerate(["cognitive", "COG", "Cognitivo", "META"]))
    assert [r.category for r in parse_reference(data, YAML)] == [
        Category.COGNITIVE, Category.COGNITIVE, Category.COGNITIVE, Category.META_COGNITIVE]


def test_yaml_dates_and_odd_keys_are_kept_as_json_in_the_raw_record() -> None:
    [record] = parse_reference(fragment(1) + "when: 2024-05-01\n1: one\n", YAML)
    assert record.raw["when"] == "2024-05-01" and record.raw["1"] == "one"
    json.dumps(record.raw)


def test_an_unknown_category_names_its_path_fragment_and_line() -> None:
    data = "".join("---\n" + fragment(i) for i in range(3)) + "---\n" + fragment(
        3, category="Cogntive")
    [(path, message)] = issues_of(data)
    assert path == "input.data.3.category"
    assert "'Cogntive' is not a known category" in message
    assert "fragment 'F3'" in message and "line 15" in message


def test_an_unknown_type_is_an_error_too() -> None:
    [(path, message)] = issues_of(fragment(1, type="gossip"))
    assert path == "input.data.0.type" and "'gossip' is not a known type" in message


def test_missing_id_and_content_are_each_reported() -> None:
    data = "---\ncontent: No id here.\n---\nid: X\n---\nid: Y\ncontent: '   '\n"
    assert [path for path, _ in issues_of(data)] == [
        "input.data.0.id", "input.data.1.content", "input.data.2.content"]


def test_a_duplicate_id_in_one_file_is_refused_at_the_second() -> None:
    [(path, message)] = issues_of("---\n" + fragment(1) + "---\n" + fragment(1))
    assert path == "input.data.1.id" and "fragment 0 (line 2)" in message


@pytest.mark.parametrize("fields, path", [
    ({"relevance": 11}, "input.data.0.relevance"),
    ({"relevance": True}, "input.data.0.relevance"),
    ({"tags": "one,two"}, "input.data.0.tags"),
    ({"metadata": [1, 2]}, "input.data.0.metadata"),
    ({"context": {"a": 1}}, "input.data.0.context"),
    ({"content": "nul\u0000inside"}, "input.data.0.content"),
])
def test_bad_field_values_are_refused_with_their_path(fields: dict[str, object],
                                                      path: str) -> None:
    assert [p for p, _ in issues_of(fragment(1, **fields))] == [path]


def test_malformed_yaml_gives_line_and_column() -> None:
    data = fragment(1) + "---\nid: F2\ncontent: [unclosed\ncategory: COG\n"
    [(path, message)] = issues_of(data)
    assert path == "input.data"
    assert "is not valid YAML" in message and "line 7, column 9" in message


def test_malformed_yaml_in_markdown_gives_the_line_of_the_file() -> None:
    data = "# Title\n\n```yaml\nid: A\ncontent: : bad\n```\n"
    [(_, message)] = issues_of(data)
    assert "line 5, column" in message


def test_an_unclosed_fence_is_refused() -> None:
    [(_, message)] = issues_of("intro\n```yaml\nid: A\ncontent: x\n")
    assert "opened at line 2 is never closed" in message


def test_malformed_jsonl_gives_each_bad_line_and_column() -> None:
    data = '{"id": "A", "content": "ok"}\n{"id": "B", "content": }\nnot json\n'
    assert issues_of(data, JSONL) == [
        ("input.data", "line 2, column 24: is not valid JSON (Expecting value)"),
        ("input.data", "line 3, column 1: is not valid JSON (Expecting value)")]


def test_a_value_that_is_not_a_mapping_is_refused() -> None:
    [(path, message)] = issues_of('["a", "b"]\n', JSONL)
    assert path == "input.data.0" and "must be a mapping" in message


def test_yaml_aliases_are_refused() -> None:
    data = "id: A\ncontent: &c text here\ncontext: *c\n"
    [(_, message)] = issues_of(data)
    assert "alias" in message


def test_an_empty_file_and_too_many_fragments_are_refused() -> None:
    assert issues_of("\n\n") == [("input.data", "holds no fragment")]
    data = "".join(json.dumps({"id": str(i), "content": "x"}) + "\n" for i in range(4))
    with pytest.raises(InvalidInput) as refused:
        parse_reference(data, JSONL, max_fragments=3)
    assert refused.value.issues[0].message == "has 4 fragments; the limit is 3"
