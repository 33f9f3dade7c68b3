"""The llm_calls the price book could not bill (``price_status`` unpriced or
invalid_tokens), per project, provider and model: ``meterline status`` lists them so an
operator adds a price (then ``meterline reprice``) before the invoice goes out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from meterline.sinks.clickhouse.identifiers import check_identifier

UNPRICED = """
SELECT project, provider, model, price_status, count(), sum(input_tokens),
       sum(output_tokens), max(timestamp)
FROM {db}.events FINAL
WHERE kind = 'llm_call' AND price_status IN ('unpriced', 'invalid_tokens')
  AND timestamp >= %(since)s
GROUP BY project, provider, model, price_status
ORDER BY count() DESC, project, provider, model
LIMIT %(limit)s
"""


class UnpricedModel(NamedTuple):
    project: str
    provider: str
    model: str
    status: str
    calls: int
    input_tokens: int
    output_tokens: int
    last_seen: datetime


def unpriced_models(
    client: Any, database: str, since: datetime, limit: int = 50
) -> list[UnpricedModel]:
    db = check_identifier(database)
    rows = client.query(
        UNPRICED.format(db=db), parameters={"since": since, "limit": limit}
    ).result_rows
    return [
        UnpricedModel(str(p), str(v), str(m), str(s), int(n), int(i), int(o), t)
        for p, v, m, s, n, i, o, t in rows
    ]
