"""LlamaIndex's `MetadataFilters` translated into ragstore's filter (README.md, "Filters").

A separate module because the translation is the one place where the two filter languages meet: every
operator either maps to what ragstore's SQL compiler does with the same meaning, or is refused here, by
name, before any request is made. A store that silently ignored an operator it cannot express would
return unfiltered nodes, which a RAG application shows to a user as if they matched.

The meanings line up with LlamaIndex's reference (`build_metadata_filter_fn`, the SimpleVectorStore):
`!=` and `nin` match a node that lacks the key, `is_empty` matches a missing key or `""` (a `None` or `[]`
value is left out of the filterable projection when the node is stored, so it is "missing" too: see
nodes.py), and the condition `not` matches the nodes that none of its filters match.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

__all__ = ["DOCUMENT_FIELDS", "SUPPORTED_OPERATORS", "UnsupportedFilter", "combine", "ragstore_filter"]

# The keys ragstore's filter reads as columns of the document, not as metadata: a metadata key of that name
# cannot be reached by a filter, so a filter naming one is refused rather than answered from the column.
DOCUMENT_FIELDS = frozenset({"source_uri", "title", "mime_type", "created_at", "updated_at"})
# LlamaIndex writes the node's ref_doc_id under `document_id` (for Chroma), `doc_id` and `ref_doc_id`;
# ragstore's `document_id` is its own integer id, so that name is read as `ref_doc_id`.
RENAMED = {"document_id": "ref_doc_id"}

_COMPARISONS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
}
_LISTS = {FilterOperator.IN: "$in", FilterOperator.NIN: "$nin"}
SUPPORTED_OPERATORS = frozenset({*_COMPARISONS, *_LISTS, FilterOperator.IS_EMPTY})


class UnsupportedFilter(ValueError):
    """A filter ragstore cannot answer with LlamaIndex's meaning (an operator, a key or a value)."""


def ragstore_filter(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """The ragstore filter for `filters`; None when there is nothing to filter on."""
    if filters is None or not filters.filters:
        return None
    return _group(filters, "filters")


def combine(*parts: dict[str, Any] | None) -> dict[str, Any] | None:
    """The AND of the given filters (None ones left out); None when none is given."""
    given = [p for p in parts if p]
    if not given:
        return None
    return given[0] if len(given) == 1 else {"$and": given}


def _group(filters: MetadataFilters, where: str) -> dict[str, Any]:
    items = []
    for i, item in enumerate(filters.filters):
        at = f"{where}[{i}]"
        if isinstance(item, MetadataFilters):
            if not item.filters:
                raise UnsupportedFilter(f"{at}: an empty nested MetadataFilters")
            items.append(_group(item, at))
        else:
            items.append(_one(item, at))
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return items[0] if len(items) == 1 else {"$and": items}
    if condition == FilterCondition.OR:
        return items[0] if len(items) == 1 else {"$or": items}
    if condition == FilterCondition.NOT:  # LlamaIndex: none of the filters matches
        return {"$not": items[0] if len(items) == 1 else {"$or": items}}
    raise UnsupportedFilter(f"{where}: the condition {condition!r} is not supported")


def _one(item: MetadataFilter, where: str) -> dict[str, Any]:
    key, op, value = RENAMED.get(item.key, item.key), item.operator, item.value
    if key in DOCUMENT_FIELDS:
        raise UnsupportedFilter(
            f"{where}: metadata key {key!r} cannot be filtered on: ragstore's filter reads {key!r} as the "
            "document's own field (node metadata of that name is stored and returned, but not filterable)"
        )
    if op == FilterOperator.IS_EMPTY:
        return {"$or": [{key: {"$exists": False}}, {key: {"$eq": ""}}]}
    if op not in SUPPORTED_OPERATORS:
        supported = ", ".join(sorted(o.name for o in SUPPORTED_OPERATORS))
        raise UnsupportedFilter(
            f"{where}: the filter operator {op.name} ({op.value!r}) on {key!r} is not supported by ragstore "
            f"(supported: {supported})"
        )
    if value is None:
        raise UnsupportedFilter(f"{where}: {op.name} on {key!r} needs a value (a missing key: use IS_EMPTY)")
    if op in _LISTS:
        values = value if isinstance(value, list) else [value]
        if not values:
            # An empty `in` matches nothing and an empty `nin` everything: said directly, since ragstore's
            # filter refuses empty lists.
            return _empty_list(key, op)
        return {key: {_LISTS[op]: list(values)}}
    if isinstance(value, list):
        raise UnsupportedFilter(f"{where}: {op.name} on {key!r} compares with one value, got a list (use IN)")
    return {key: {_COMPARISONS[op]: value}}


def _empty_list(key: str, op: FilterOperator) -> dict[str, Any]:
    """`in []` matches no node, `nin []` every node."""
    everything: dict[str, Any] = {"$or": [{key: {"$exists": True}}, {key: {"$exists": False}}]}
    return everything if op == FilterOperator.NIN else {"$not": everything}
