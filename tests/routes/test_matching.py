"""Subscription matching and validation of `event_types` and `filter`."""

from __future__ import annotations

from typing import Any

import pytest

from routes.matching import EVENT_TYPES, matches, validate_event_types, validate_filter

COMPLETED = "transcript.completed"
FAILED = "transcript.failed"
PROVIDERS = ("assemblyai", "recall", "gladia", "deepgram", "revai", "speechmatics", "aitronos", "generic")


def match(
    event_types: list[str],
    filter: dict[str, Any] | None = None,
    *,
    event_type: str = COMPLETED,
    provider: str = "assemblyai",
    metadata: dict[str, Any] | None = None,
) -> bool:
    return matches(
        event_type,
        provider,
        {"external_id": "call-55123", "team": "support"} if metadata is None else metadata,
        event_types=event_types,
        filter=filter,
    )


# --- event types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_types", "event_type", "expected"),
    [
        pytest.param([], COMPLETED, True, id="empty-means-all"),
        pytest.param([], FAILED, True, id="empty-means-all-failed"),
        pytest.param(["*"], FAILED, True, id="star"),
        pytest.param(["transcript.*"], COMPLETED, True, id="family-wildcard"),
        pytest.param(["transcript.*"], FAILED, True, id="family-wildcard-failed"),
        pytest.param([COMPLETED], COMPLETED, True, id="exact"),
        pytest.param([COMPLETED], FAILED, False, id="exact-other-type"),
        pytest.param([FAILED, COMPLETED], COMPLETED, True, id="any-of-several"),
        pytest.param(["transcript.*"], "transcriptx.completed", False, id="wildcard-needs-the-dot"),
    ],
)
def test_matches_selects_by_event_type(event_types: list[str], event_type: str, expected: bool) -> None:
    assert expected is match(event_types, event_type=event_type)


# --- filter -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        pytest.param(None, True, id="no-filter"),
        pytest.param({}, True, id="empty-filter"),
        pytest.param({"provider": ["assemblyai"]}, True, id="provider-listed"),
        pytest.param({"provider": ["deepgram", "assemblyai"]}, True, id="provider-one-of"),
        pytest.param({"provider": ["deepgram"]}, False, id="provider-not-listed"),
        pytest.param({"metadata": {"team": "support"}}, True, id="metadata-value"),
        pytest.param({"metadata": {"team": "sales"}}, False, id="metadata-other-value"),
        pytest.param({"metadata": {"team": ["sales", "support"]}}, True, id="metadata-one-of-values"),
        pytest.param({"metadata": {"team": ["sales", "legal"]}}, False, id="metadata-none-of-values"),
        pytest.param({"metadata": {"region": "eu"}}, False, id="metadata-key-missing"),
        pytest.param(
            {"metadata": {"team": "support", "external_id": "call-55123"}}, True, id="metadata-all-keys"
        ),
        pytest.param(
            {"metadata": {"team": "support", "external_id": "call-1"}}, False, id="metadata-one-key-differs"
        ),
        pytest.param(
            {"provider": ["assemblyai"], "metadata": {"team": "sales"}}, False, id="both-parts-must-match"
        ),
        pytest.param(
            {"provider": ["assemblyai"], "metadata": {"team": "support"}}, True, id="both-parts-match"
        ),
    ],
)
def test_matches_applies_provider_and_metadata_filters(filter: dict[str, Any] | None, expected: bool) -> None:
    assert expected is match([], filter)


def test_matches_needs_both_event_type_and_filter_to_match() -> None:
    assert not match([FAILED], {"provider": ["assemblyai"]})
    assert not match([COMPLETED], {"provider": ["recall"]})
    assert match([COMPLETED], {"provider": ["assemblyai"]})


@pytest.mark.parametrize(
    ("value", "wanted", "expected"),
    [
        pytest.param(1, "1", True, id="int-as-json-text"),
        pytest.param(1.5, "1.5", True, id="float-as-json-text"),
        pytest.param(True, "true", True, id="bool-as-json-text"),
        pytest.param(True, "True", False, id="bool-python-spelling"),
        pytest.param(None, "null", True, id="null-as-json-text"),
        pytest.param(["vip"], "vip", False, id="array-never-matches"),
        pytest.param({"a": "b"}, "b", False, id="object-never-matches"),
    ],
)
def test_matches_compares_non_string_metadata_by_json_text(value: Any, wanted: str, expected: bool) -> None:
    assert expected is match([], {"metadata": {"k": wanted}}, metadata={"k": value})


def test_matches_treats_missing_metadata_as_empty() -> None:
    assert matches(COMPLETED, "generic", None, event_types=[], filter={"provider": ["generic"]})
    assert not matches(COMPLETED, "generic", None, event_types=[], filter={"metadata": {"k": "v"}})


# --- validate_event_types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, [], id="none-means-all"),
        pytest.param([], [], id="empty-means-all"),
        pytest.param([COMPLETED], [COMPLETED], id="known-type"),
        pytest.param(["*", "transcript.*"], ["*", "transcript.*"], id="wildcards"),
        pytest.param([FAILED, COMPLETED, FAILED], [FAILED, COMPLETED], id="duplicates-dropped-in-order"),
        pytest.param((COMPLETED,), [COMPLETED], id="tuple"),
    ],
)
def test_validate_event_types_accepts_known_types_and_wildcards(value: Any, expected: list[str]) -> None:
    assert expected == validate_event_types(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(COMPLETED, "must be a list", id="bare-string"),
        pytest.param({"type": COMPLETED}, "must be a list", id="object"),
        pytest.param(3, "must be a list", id="number"),
        pytest.param([COMPLETED, 3], "must be strings", id="non-string-entry"),
        pytest.param(["transcript.complete"], "unknown event type 'transcript.complete'", id="typo"),
        pytest.param(["Transcript.Completed"], "unknown event type", id="wrong-case"),
        pytest.param(["job.*"], "unknown event type 'job.*'", id="unknown-family"),
        pytest.param(["transcript*"], "unknown event type", id="wildcard-without-dot"),
        pytest.param([""], "unknown event type", id="empty-string"),
    ],
)
def test_validate_event_types_rejects_bad_shapes_and_unknown_types(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_event_types(value)


def test_validate_event_types_error_lists_the_known_types() -> None:
    with pytest.raises(ValueError) as info:
        validate_event_types(["nope"])
    assert all(event_type in str(info.value) for event_type in EVENT_TYPES)


# --- validate_filter --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, {}, id="none"),
        pytest.param({}, {}, id="empty"),
        pytest.param(
            {"provider": ["recall", "recall"]}, {"provider": ["recall"]}, id="provider-deduplicated"
        ),
        pytest.param(
            {"metadata": {"team": "support", "region": ["eu", "us"]}},
            {"metadata": {"team": "support", "region": ["eu", "us"]}},
            id="metadata-value-and-list",
        ),
        pytest.param({"metadata": {}}, {"metadata": {}}, id="empty-metadata"),
    ],
)
def test_validate_filter_returns_a_clean_copy(value: Any, expected: dict[str, Any]) -> None:
    assert expected == validate_filter(value, providers=PROVIDERS)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param([], "filter must be an object", id="list"),
        pytest.param("provider=recall", "filter must be an object", id="string"),
        pytest.param({"providers": ["recall"]}, "unknown key.*'providers'", id="unknown-key"),
        pytest.param({"provider": "recall"}, "filter.provider must be a list", id="provider-bare-string"),
        pytest.param({"provider": []}, "filter.provider is an empty list", id="provider-empty"),
        pytest.param({"provider": [1]}, "non-empty strings", id="provider-non-string"),
        pytest.param({"provider": [""]}, "non-empty strings", id="provider-empty-string"),
        pytest.param({"provider": ["assembly"]}, "unknown value 'assembly'", id="provider-unknown"),
        pytest.param({"metadata": ["team"]}, "filter.metadata must be an object", id="metadata-list"),
        pytest.param(
            {"metadata": {"priority": 1}}, "filter.metadata.priority must be a list", id="metadata-number"
        ),
        pytest.param({"metadata": {"vip": True}}, "filter.metadata.vip must be a list", id="metadata-bool"),
        pytest.param({"metadata": {"team": None}}, "filter.metadata.team must be a list", id="metadata-null"),
        pytest.param(
            {"metadata": {"team": {"a": "b"}}}, "filter.metadata.team must be a list", id="metadata-object"
        ),
        pytest.param({"metadata": {"team": ["a", 2]}}, "non-empty strings", id="metadata-list-non-string"),
        pytest.param(
            {"metadata": {"team": []}}, "filter.metadata.team is an empty list", id="metadata-list-empty"
        ),
        pytest.param({"metadata": {"": "x"}}, "keys must be non-empty strings", id="metadata-empty-key"),
    ],
)
def test_validate_filter_rejects_bad_shapes_with_a_clear_message(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_filter(value, providers=PROVIDERS)


def test_validate_filter_without_a_provider_list_accepts_any_provider_id() -> None:
    assert {"provider": ["someday"]} == validate_filter({"provider": ["someday"]})


def test_validate_filter_does_not_alias_the_input() -> None:
    original = {"provider": ["recall"], "metadata": {"team": ["a"]}}
    clean = validate_filter(original)
    clean["provider"].append("gladia")
    clean["metadata"]["team"].append("b")
    assert {"provider": ["recall"], "metadata": {"team": ["a"]}} == original
