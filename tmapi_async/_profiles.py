"""The two endpoints that say who sells, as the client asks them: what to send, and what
an answer means.

``/1688/shop/shop_info`` answers a shop's profile and ``/1688/shop/category`` its
category tree, one request per shop each, given the shop's home page (``shop_url``).
They share the items endpoint's envelope, error codes and key, so an answer is
deciphered by the same rules (:func:`~._protocol.decipher_as`).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from ._protocol import decipher_as, normalise_shop_url
from ._request import Endpoint
from ._shop_profile import ShopCategories, ShopProfile, categories_decoder, profile_decoder

__all__ = ["SHOP_CATEGORY", "SHOP_CATEGORY_PATH", "SHOP_INFO", "SHOP_INFO_PATH", "shop_query"]

SHOP_INFO_PATH = "/1688/shop/shop_info"
SHOP_CATEGORY_PATH = "/1688/shop/category"


def _decipher_profile(
    status: int, headers: Mapping[str, str], body: bytes, secret: str
) -> ShopProfile:
    return decipher_as(profile_decoder, "a shop profile", status, headers, body, secret=secret)


def _decipher_categories(
    status: int, headers: Mapping[str, str], body: bytes, secret: str
) -> ShopCategories:
    return decipher_as(
        categories_decoder, "a shop's categories", status, headers, body, secret=secret
    )


SHOP_INFO: Endpoint[ShopProfile] = Endpoint(SHOP_INFO_PATH, _decipher_profile)
"""``/1688/shop/shop_info``: a shop's profile."""

SHOP_CATEGORY: Endpoint[ShopCategories] = Endpoint(SHOP_CATEGORY_PATH, _decipher_categories)
"""``/1688/shop/category``: a shop's category tree."""


def shop_query(shop_url: str) -> tuple[str, str]:
    """The shop's home page and the encoded query asking either endpoint about it.

    Raises:
        InvalidParameterError: not a shop URL (as for the items; nothing is sent).
    """
    home = normalise_shop_url(shop_url)
    return home, f"shop_url={quote(home, safe='')}"
