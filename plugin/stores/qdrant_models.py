"""Between docsync's values and qdrant-client's models (`docsync.plugin.stores.qdrant`):
filters, queries, points, quantization, and the client's errors mapped to docsync's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from qdrant_client import models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from docsync.plugin.errors import StoreError, StoreRequestError, StoreUnavailableError
from docsync.plugin.keyword import KEYWORD_VECTOR, SparseVector
from docsync.plugin.store import OVERSAMPLING, Fusion, Match, Point, floats


def map_error(exc: Exception, where: str) -> StoreError | None:
    if isinstance(exc, UnexpectedResponse):
        code = exc.status_code or 0
        detail = " ".join(exc.content.decode("utf-8", "replace").split())[:300]
        if code == 429 or code >= 500:
            return StoreUnavailableError(f"Qdrant ({where}) answered {code}: {detail}")
        return StoreRequestError(f"Qdrant ({where}) refused the request ({code}): {detail}")
    if isinstance(exc, ResponseHandlingException | httpx.TransportError | ConnectionError):
        return StoreUnavailableError(f"Qdrant ({where}) is unreachable: {_reason(exc)}")
    if isinstance(exc, TimeoutError):
        return StoreUnavailableError(f"Qdrant ({where}) timed out: {_reason(exc)}")
    if isinstance(exc, ValueError):  # the embedded engine's way of refusing a request
        return StoreRequestError(f"Qdrant ({where}) refused the request: {exc}")
    return None


def _reason(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__ or exc
    source = getattr(exc, "source", None)
    return str(source or inner or exc) or type(exc).__name__


def query_filter(
    match: Match | None, *, lacking_keyword: bool = False, exclude: Match | None = None
) -> models.Filter | None:
    if not match and not lacking_keyword and not exclude:
        return None
    excluded = _conditions(exclude)
    if lacking_keyword:
        excluded.append(models.HasVectorCondition(has_vector=KEYWORD_VECTOR))
    return models.Filter(must=_conditions(match) or None, must_not=excluded or None)


def _conditions(match: Match | None) -> list[models.Condition]:
    conditions: list[models.Condition] = []
    for key, value in (match or {}).items():
        if isinstance(value, str):
            conditions.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
        else:
            conditions.append(
                models.FieldCondition(key=key, match=models.MatchAny(any=list(value)))
            )
    return conditions


def scalar_quantization(name: str) -> models.ScalarQuantization | None:
    if name == "none":
        return None
    config = models.ScalarQuantizationConfig(
        type=models.ScalarType.INT8, quantile=0.99, always_ram=True
    )
    return models.ScalarQuantization(scalar=config)


RESCORED = models.SearchParams(
    quantization=models.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
)


def dense_and_keyword(
    vector: Sequence[float] | None, keyword: SparseVector | None
) -> list[tuple[Any, str | None]]:
    """Each search's query and the vector it uses (None: the unnamed, dense one)."""
    queries: list[tuple[Any, str | None]] = []
    if vector is not None:
        queries.append((floats(vector), None))
    if keyword is not None:
        queries.append((sparse(keyword), KEYWORD_VECTOR))
    if not queries:
        raise ValueError("a search needs a dense vector, a keyword vector or both")
    return queries


def fusion_query(fusion: Fusion) -> models.Query:
    if fusion.method == "dbsf":
        return models.FusionQuery(fusion=models.Fusion.DBSF)
    if fusion.weights is None:  # a server older than weighted RRF takes this one
        return models.RrfQuery(rrf=models.Rrf(k=fusion.k))
    return models.RrfQuery(rrf=models.Rrf(k=fusion.k, weights=list(fusion.weights)))


def sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=vector.indices, values=vector.values)


def point_struct(point: Point) -> models.PointStruct:
    if point.keyword is None:
        return models.PointStruct(id=point.id, vector=point.vector, payload=point.payload)
    vectors: dict[str, Any] = {"": point.vector, KEYWORD_VECTOR: sparse(point.keyword)}
    return models.PointStruct(id=point.id, vector=vectors, payload=point.payload)
