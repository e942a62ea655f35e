"""Deterministic shop profiles and category trees: who sells, per simulated shop.

A shop's profile follows from its name (and the day), like its catalogue, so tests can
compute what ``/1688/shop/shop_info`` answers without asking. The answers carry the
API's drift: some shops send ``company_id`` and ``tp_year`` as ints, others as strings,
flags come as booleans or ``0`` / ``1``, the logo is protocol-relative (``//host/x``),
and a category's ``count`` may be a numeric string. Each day ``d`` adds favourites and
moves the ratings' scores, deterministically from (name, d).

The category tree is the catalogue's own (:func:`~._catalogue.shop_categories`): groups
with their leaves, each with the number of products the shop lists in it that day.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Final

from ._catalogue import ShopCatalogue

__all__ = ["RATING_TYPES", "shop_category_tree", "shop_profile"]

#: The ratings of every simulated shop, as (type, title).
RATING_TYPES: Final[tuple[tuple[str, str], ...]] = (
    ("composite", "综合服务"),
    ("goods", "货品描述"),
    ("response", "响应速度"),
    ("delivery", "发货速度"),
    ("return", "退换体验"),
)
_PROVINCES: Final = (
    "浙江省 金华市",
    "广东省 广州市",
    "江苏省 苏州市",
    "福建省 泉州市",
    "山东省 临沂市",
)
_TRADES: Final = ("五金", "日用品", "服饰", "宠物用品", "厨具", "电子")


def _rng(*parts: object) -> random.Random:
    seed = hashlib.sha256("/".join(map(str, ("tmapi-sim/profile", *parts))).encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def _member_id(name: str) -> str:
    return "b2b-" + str(int(hashlib.sha256(name.encode()).hexdigest()[:12], 16))


def shop_profile(name: str, day: int = 0) -> dict[str, Any]:
    """The ``data`` of ``/1688/shop/shop_info`` for shop ``name`` on ``day``, as sent."""
    rng = _rng(name)
    loose = rng.random() < 0.5  # this shop's answers drift: ints as strings, flags as 0/1
    company_id = rng.randrange(10**8, 10**9)
    tp_year = rng.randint(1, 18)
    factory, super_factory = rng.random() < 0.6, rng.random() < 0.2
    flags = {
        "is_industry_brand": rng.random() < 0.3,
        "is_factory": factory or super_factory,
        "is_super_factory": super_factory,
        "is_flagship_shop": rng.random() < 0.25,
        "is_tp": True,
    }
    favorites = rng.randint(0, 50_000)
    scores = [round(rng.uniform(3.0, 5.0), 1) for _ in RATING_TYPES]
    moved = _rng(name, "day", day)
    if day:
        favorites += sum(_rng(name, "favorites", d).randint(1, 200) for d in range(1, day + 1))
        scores = [min(5.0, max(1.0, round(s + moved.choice((-0.1, 0.0, 0.1)), 1))) for s in scores]
    trade = rng.choice(_TRADES)
    area = rng.randint(570, 599)
    return {
        "member_id": _member_id(name),
        "seller_id": str(rng.randrange(10**9, 10**10)),
        "company_id": str(company_id) if loose else company_id,
        "company_name": f"{rng.choice(_PROVINCES).split()[1]}{name}{trade}有限公司",
        # "+86…", as many sellers write it: a cell a spreadsheet would read as a formula.
        "contact_phone": f"{'+86-' if loose else '0'}{area}-{rng.randrange(10**7, 10**8)}",
        "shop_url": f"https://{name}.1688.com",
        "shop_logo": f"//cbu01.alicdn.com/img/logo/{name}.jpg",
        "shop_name": f"{name}{trade}厂",
        "chat_url": f"https://amos.alicdn.com/getcid.aw?uid={name}",
        "location_str": rng.choice(_PROVINCES),
        **{key: int(value) if loose else value for key, value in flags.items()},
        "tp_year": str(tp_year) if loose else tp_year,
        "favorite_count": str(favorites) if loose else favorites,
        "shop_ratings": [
            {"title": title, "type": kind, "score": str(score) if loose else score}
            for (kind, title), score in zip(RATING_TYPES, scores, strict=True)
        ],
    }


def shop_category_tree(catalogue: ShopCatalogue) -> dict[str, Any]:
    """The ``data`` of ``/1688/shop/category`` for a shop's catalogue (on its day)."""
    name = catalogue.name
    loose = _rng(name).random() < 0.5

    def count(cat_id: str, cat_type: str) -> int | str:
        total = catalogue.page("default", cat_id, cat_type, 0, 0, 0)[0]
        return str(total) if loose else total

    groups = [c for c in catalogue.categories if not c.parent_id]
    tree: list[dict[str, Any]] = [
        {
            "id": int(group.cat_id) if loose else group.cat_id,
            "name": group.name,
            "full_name": group.name,
            "count": count(group.cat_id, "1"),
            "children": [
                {
                    "id": leaf.cat_id,
                    "name": leaf.name,
                    "full_name": f"{group.name}>{leaf.name}",
                    "count": count(leaf.cat_id, "0"),
                    "children": [],
                }
                for leaf in catalogue.categories
                if leaf.parent_id == group.cat_id
            ],
        }
        for group in groups
    ]
    return {"member_id": _member_id(name), "is_custom": 1 if loose else True, "list": tree}
