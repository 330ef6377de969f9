"""LlamaIndex nodes as ragstore documents, and back.

One node is one ragstore document of one chunk: the node id is the document's `source_uri` (so adding a
node again replaces it), the node text is the chunk text, and the node's embedding is the chunk's vector
(ragstore's own embedder is never asked for it).

The document's metadata holds two things:

- the node's own metadata, at the top level, so that ragstore's filter reaches it by its key. Values
  that are `None` or `[]` are left out of this projection: ragstore's filter cannot tell them from a
  list or an object, and LlamaIndex's `is_empty` means exactly "missing, None, '' or []", which is then
  `$exists: false` or `""` (filters.py);
- LlamaIndex's own keys, as every LlamaIndex store writes them (`node_to_metadata_dict`): `_node_content`
  (the whole node as JSON, without its embedding), `_node_type`, `doc_id` and `ref_doc_id` (the source
  document's id, which `delete(ref_doc_id)` and `doc_ids` filter on). Its `document_id` copy is not
  kept: that name is ragstore's own integer id in a filter (filters.py reads it as `ref_doc_id`).

A node is rebuilt from `_node_content`, so its metadata round-trips as JSON (ints stay ints, `None` and
lists included) whatever the projection left out. Its text is ragstore's chunk text, unless ragstore's
normalisation (NFC, `\\r\\n` to `\\n`, stripped ends, NUL removed: text/hashing.py) would change it: then
`_node_content` keeps the exact text too, and that is what comes back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core.schema import BaseNode, MetadataMode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from ragstore.schemas import ChunkInput, DocumentInput
from ragstore.text.hashing import normalize_text
from ragstore.valid_text import without_nul

__all__ = ["LLAMA_KEYS", "REF_DOC_KEY", "last_per_id", "node_document", "stored_node"]

REF_DOC_KEY = "ref_doc_id"
NODE_CONTENT_KEY = "_node_content"
# What LlamaIndex adds to a node's metadata when it stores it; never a user's metadata on the way back.
LLAMA_KEYS = frozenset({NODE_CONTENT_KEY, "_node_type", "doc_id", "document_id", REF_DOC_KEY})


def node_text(node: BaseNode) -> str:
    return node.get_content(metadata_mode=MetadataMode.NONE)


def node_document(node: BaseNode) -> DocumentInput:
    """The ragstore document that stores `node`; ValueError for a node ragstore cannot store."""
    embedding = node.embedding
    if embedding is None:
        raise ValueError(f"node {node.node_id!r} has no embedding: embed the nodes before adding them")
    text = node_text(node)
    kept = normalize_text(without_nul(text))
    if not kept:
        raise ValueError(f"node {node.node_id!r} has no text: ragstore stores only nodes with text")
    stored = node_to_metadata_dict(node, remove_text=kept == text, flat_metadata=False)
    # `stored` is the node's metadata as JSON values (a date is its ISO text) plus LlamaIndex's keys.
    metadata = {k: v for k, v in stored.items() if k not in LLAMA_KEYS and v is not None and v != []}
    for key in ("_node_type", "doc_id", REF_DOC_KEY):
        metadata[key] = stored[key]
    # The node's JSON as an object, not LlamaIndex's JSON text: a search decodes the metadata anyway, and a
    # second decode of the text per hit was a third of what a query cost on top of ragstore's search.
    metadata[NODE_CONTENT_KEY] = json.loads(stored[NODE_CONTENT_KEY])
    title = node.metadata.get("title")
    return DocumentInput(
        text="",
        title=title if isinstance(title, str) else "",
        source_uri=node.node_id,
        metadata=metadata,
        chunks=[ChunkInput(text=text, vector=np.asarray(embedding, dtype=np.float32))],
    )


def stored_node(
    source_uri: str, text: str, metadata: dict[str, Any], *, ordinal: int = 0, embedding: Sequence[float] | None = None
) -> BaseNode:
    """The node a stored chunk holds.

    A document that LlamaIndex did not write (ingested by ragstore itself) becomes a TextNode of the chunk:
    its id the source (with `#ordinal` past the first chunk), its source document the source, its metadata
    the document's.
    """
    if NODE_CONTENT_KEY in metadata:
        node = _from_content(metadata, text)
    else:
        node = TextNode(
            id_=source_uri if ordinal == 0 else f"{source_uri}#{ordinal}",
            text=text,
            metadata=dict(metadata),
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=source_uri)},
        )
    if embedding is not None:
        node.embedding = list(embedding)
    return node


def _from_content(metadata: dict[str, Any], text: str) -> BaseNode:
    """The node `_node_content` describes, with the chunk's text put in before it is validated: the text was
    removed when it was stored, and setting it afterwards validated the node a second time (a sixth of a
    query's own cost, at ten hits). Other node types (an IndexNode, an ImageNode) go LlamaIndex's own way."""
    content = metadata[NODE_CONTENT_KEY]
    if metadata.get("_node_type") not in (None, TextNode.class_name()):
        if not isinstance(content, str):
            metadata = {**metadata, NODE_CONTENT_KEY: json.dumps(content)}
        node = metadata_dict_to_node(metadata)
        if not node_text(node):
            node.set_content(text)
        return node
    # An object as this store keeps it; JSON text as LlamaIndex's own stores keep it (and older rows did).
    data = json.loads(content) if isinstance(content, str) else dict(content)
    data.pop("class_name", None)
    if not data.get("text"):
        data["text"] = text
    return TextNode(**data)


def last_per_id(nodes: Sequence[BaseNode]) -> list[BaseNode]:
    """One node per id, the last given (an upsert's meaning), in the order of first appearance: ragstore
    refuses one source given twice with different content in one request."""
    last: dict[str, BaseNode] = {}
    for node in nodes:
        last[node.node_id] = node
    return list(last.values())
