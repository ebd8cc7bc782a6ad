"""Model prices for the ``spans.cost_usd`` column: genai-prices, overridable by a file.

``register_model_prices`` builds the DuckDB table ``model_prices(provider, model_name,
input_usd_per_token, cached_input_usd_per_token, output_usd_per_token, source)`` for every
(provider, model) the store's LLM spans use.  Prices are looked up when the store is opened,
so a changed price or prices file re-prices every span (nothing is baked into the store).
A model neither source knows gets no row: its spans have ``cost_usd`` NULL ("unpriced").

Prices file (``--prices prices.yaml``)::

    models:
      - model: acme-llm-7b          # model_name as reported by the spans
        provider: internal          # optional: matches any provider when omitted
        input_per_mtok: 0.20        # USD per million input tokens
        cached_input_per_mtok: 0.05 # optional, defaults to input_per_mtok
        output_per_mtok: 0.60

Limitation: tiered prices (by context length) are taken at their first tier.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import duckdb
import pyarrow as pa
import yaml
from pydantic import BaseModel, Field, ValidationError

from analytics.errors import AnalyticsError

_MTOK = 1_000_000


class ModelPrice(BaseModel):
    model: str
    provider: str | None = None
    input_per_mtok: float = Field(ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    output_per_mtok: float = Field(ge=0)


class PricesFile(BaseModel):
    models: list[ModelPrice] = Field(default_factory=list)


def load_prices_file(path: Path) -> PricesFile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return PricesFile.model_validate(raw)
    except OSError as exc:
        raise AnalyticsError(f"cannot read prices file {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise AnalyticsError(f"prices file {path} is not valid YAML") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise AnalyticsError(f"prices file {path}: {where}: {first['msg']}") from None


@lru_cache(maxsize=4096)
def lookup_genai_price(provider: str | None, model: str) -> tuple[float, float, float] | None:
    """(input, cached input, output) USD per token from genai-prices, or None if unknown."""
    from genai_prices import Usage, calc_price

    def per_token(usage: Usage) -> Decimal | None:
        for provider_id in ((provider, None) if provider else (None,)):
            try:
                return calc_price(usage, model_ref=model, provider_id=provider_id).total_price
            except LookupError:
                continue
        return None

    input_price = per_token(Usage(input_tokens=_MTOK))
    output_price = per_token(Usage(output_tokens=_MTOK))
    if input_price is None or output_price is None:
        return None
    cached = per_token(Usage(input_tokens=_MTOK, cache_read_tokens=_MTOK))
    cached_price = cached if cached is not None else input_price
    return float(input_price) / _MTOK, float(cached_price) / _MTOK, float(output_price) / _MTOK


def register_model_prices(con: duckdb.DuckDBPyConnection, prices_file: Path | None) -> None:
    """Create the ``model_prices`` table for the models found in ``_spans_raw``."""
    overrides = load_prices_file(prices_file).models if prices_file else []
    pairs = con.execute(
        "SELECT DISTINCT provider, model_name FROM _spans_raw "
        "WHERE span_kind = 'LLM' AND model_name IS NOT NULL"
    ).fetchall()
    rows: dict[str, list[object]] = {
        "provider": [], "model_name": [], "input_usd_per_token": [],
        "cached_input_usd_per_token": [], "output_usd_per_token": [], "source": [],
    }
    for provider, model in pairs:
        override = next(
            (o for o in overrides if o.model == model and o.provider in (None, provider)), None
        )
        if override is not None:
            cached = override.cached_input_per_mtok
            prices = (
                override.input_per_mtok / _MTOK,
                (cached if cached is not None else override.input_per_mtok) / _MTOK,
                override.output_per_mtok / _MTOK,
            )
            source = "prices_file"
        else:
            found = lookup_genai_price(provider, model)
            if found is None:
                continue
            prices, source = found, "genai-prices"
        rows["provider"].append(provider)
        rows["model_name"].append(model)
        rows["input_usd_per_token"].append(prices[0])
        rows["cached_input_usd_per_token"].append(prices[1])
        rows["output_usd_per_token"].append(prices[2])
        rows["source"].append(source)
    table = pa.table(
        rows,
        schema=pa.schema([
            ("provider", pa.string()), ("model_name", pa.string()),
            ("input_usd_per_token", pa.float64()), ("cached_input_usd_per_token", pa.float64()),
            ("output_usd_per_token", pa.float64()), ("source", pa.string()),
        ]),
    )
    con.register("_model_prices_arrow", table)
    con.execute("CREATE OR REPLACE TABLE model_prices AS SELECT * FROM _model_prices_arrow")
    con.unregister("_model_prices_arrow")
