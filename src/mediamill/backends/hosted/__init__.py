"""What every hosted-API backend shares, and nothing of any one service's wire format.

- ``http``: the one HTTP client: a client per event loop (``LoopClients``), the
  call (``post``, ``request_sync``) and its failures (``NotSent``, ``Uncertain``,
  ``PermanentError``), JSON objects, services' error texts, ``Retry-After``.
- ``downloads``: bounded downloads of a service's output.
- ``prices``: the price table (``MEDIAMILL_PRICES``) and estimates from it.
- ``guards``: the no-credit breaker and the stops of paid work in flight.
"""

from .downloads import MEDIA_TYPES, download, download_deadline_s, guess_suffix, is_http_url, max_download_bytes
from .guards import CreditBreaker, stopping, stops_in_flight
from .http import (
    HTTP_IN_FLIGHT,
    KEEPALIVE_S,
    LoopClients,
    NotSent,
    ServiceError,
    Uncertain,
    error_text,
    json_object,
    post,
    refuse_redirect,
    request_sync,
    retry_wait,
    url_host,
)
from .prices import Price, lookup_price, price_table, priced

__all__ = [
    "HTTP_IN_FLIGHT",
    "KEEPALIVE_S",
    "MEDIA_TYPES",
    "CreditBreaker",
    "LoopClients",
    "NotSent",
    "Price",
    "ServiceError",
    "Uncertain",
    "download",
    "download_deadline_s",
    "error_text",
    "guess_suffix",
    "is_http_url",
    "json_object",
    "lookup_price",
    "max_download_bytes",
    "post",
    "price_table",
    "priced",
    "refuse_redirect",
    "request_sync",
    "retry_wait",
    "stopping",
    "stops_in_flight",
    "url_host",
]
