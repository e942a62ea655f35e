"""Deterministic synthetic shop catalogues.

A shop's whole catalogue follows from its name (the ``NAME`` in ``https://NAME.1688.com``) and
its size, so tests can compute the expected items without talking to the simulator. Item ``i``
does not depend on the catalogue size (a catalogue of size n is a prefix of one of size n+1),
which keeps the catalogue stable when a test grows a shop between runs.

Each shop has a two-level category tree: ``cat_type="1"`` selects a group, ``"0"`` (or none) a
leaf. Drift items come from a second stream of the same shop and lead every listing, newest
first. Base item ids are even and drift ids odd, so they never collide; ids of different
shops are 12-digit hashes (a collision needs ~10^6 items).
"""

from __future__ import annotations

import hashlib
import random
import re
from binascii import b2a_base64
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

import msgspec

from .._listing import SORTS

__all__ = [
    "SORTS",
    "Category",
    "Item",
    "SaleInfo",
    "ShopCatalogue",
    "shop_categories",
    "shop_name_from_url",
]

_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def shop_name_from_url(url: str) -> str | None:
    """Return ``NAME`` of ``http(s)://NAME.1688.com[/...]``, or ``None`` if the URL is malformed.

    The name is lower-cased (hosts are case-insensitive) and is the catalogue's seed.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    labels = host.split(".")
    if len(labels) != 3 or labels[1:] != ["1688", "com"]:
        return None
    name = labels[0]
    return name if _NAME_RE.match(name) else None


class SaleInfo(msgspec.Struct, frozen=True):
    """``sale_info`` of an item, as the endpoint gives it."""

    sale_quantity: int
    sale_amount: int


class Item(msgspec.Struct, frozen=True):
    """One item exactly as it appears in ``data.items`` (field order and types included)."""

    item_id: str
    title: str
    img: str
    category_path: list[str]
    category_name: str
    price: str
    quantity: int | None
    sale_info: SaleInfo


class Category(msgspec.Struct, frozen=True):
    """A shop category. ``cat_type="1"`` selects a top-level group (``parent_id`` is ``""``),
    ``cat_type="0"`` (the default when ``cat`` is given) a leaf category."""

    cat_id: str
    name: str
    parent_id: str


# Word lists for Chinese-ish titles; a shop picks one theme from its name so titles look like
# a real single-trade 1688 factory shop.
_THEMES: Final[tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...]] = (
    (
        ("美发剪刀", "牙剪", "平剪", "打薄剪", "理发推子", "梳子", "发夹", "围布"),
        ("专业", "左手", "CNC", "不锈钢", "日本440C", "无痕", "6寸", "6.5寸", "7寸"),
        ("发型师用", "理发店", "家用", "套装", "精修"),
    ),
    (
        ("宠物剪刀", "狗狗牵引绳", "猫抓板", "宠物梳", "猫砂盆", "狗窝", "宠物衣服", "逗猫棒"),
        ("彩色", "双尾", "加厚", "可折叠", "耐咬", "透气", "四季通用", "小型犬"),
        ("美容", "泰迪", "猫咪", "大型犬", "跨境"),
    ),
    (
        ("保温杯", "炒锅", "砧板", "收纳盒", "饭盒", "汤勺", "刀具套装", "调料瓶"),
        ("304不锈钢", "食品级", "加厚", "大容量", "防烫", "日式", "北欧风", "密封"),
        ("家用", "厨房", "学生", "办公室", "礼品"),
    ),
    (
        ("T恤", "连衣裙", "卫衣", "牛仔裤", "衬衫", "针织开衫", "运动裤", "羽绒服"),
        ("纯棉", "宽松", "韩版", "显瘦", "高腰", "加绒", "冰丝", "复古"),
        ("女装", "男装", "春秋款", "夏季", "ins风"),
    ),
    (
        ("螺丝刀", "扳手", "电钻", "卷尺", "水平仪", "工具箱", "老虎钳", "美工刀"),
        ("多功能", "家用", "工业级", "加长", "磁性", "充电式", "镀铬", "防滑"),
        ("五金", "维修", "套装", "电工", "汽修"),
    ),
    (
        ("积木", "毛绒玩具", "遥控车", "拼图", "泡泡机", "过家家", "益智玩具", "水枪"),
        ("儿童", "创意", "卡通", "大号", "发光", "益智", "早教", "网红"),
        ("男孩", "女孩", "宝宝", "幼儿园", "生日礼物"),
    ),
)
_SUFFIXES: Final = (
    "厂家直销",
    "批发",
    "一件代发",
    "跨境专供",
    "现货",
    "源头工厂",
    "亚马逊爆款",
    "",
    "",
)
_CAT_NAMES: Final = ("热销", "新品", "特价", "精品", "爆款", "定制", "清仓", "礼盒", "经典")
_NO_PRICE: Final = float("inf")
_ALNUM_ONLY: Final = bytes.maketrans(b"+/", b"xQ")  # base64 -> alphanumeric image keys
# Listing times: base items are spread over ~4 years before this instant; drift items come after.
_EPOCH: Final = 1_700_000_000


def _digest(*parts: object) -> int:
    data = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _item_id(h: int, parity: int) -> str:
    # 12 digits, never starting with 0, like real 1688 offer ids; base items get even ids and
    # the other streams (drift, a day's new listings) odd ones, so none collides with a base id.
    return str(100_000_000_000 + (h % 450_000_000_000) * 2 + parity)


def shop_categories(name: str) -> list[Category]:
    """The category tree of shop ``name``: 2-4 groups, each with 1-3 leaves (flattened, groups
    first then leaves). Ids are 9-digit strings unique to the shop."""
    rng = random.Random(f"tmapi-sim/categories/{name}")
    groups: list[Category] = []
    leaves: list[Category] = []
    names = list(_CAT_NAMES)
    rng.shuffle(names)
    used: set[str] = set()

    def new_id() -> str:
        while True:
            cid = str(rng.randrange(100_000_000, 1_000_000_000))
            if cid not in used:
                used.add(cid)
                return cid

    for g in range(rng.randint(2, 4)):
        group = Category(cat_id=new_id(), name=names[g], parent_id="")
        groups.append(group)
        for k in range(rng.randint(1, 3)):
            leaves.append(
                Category(cat_id=new_id(), name=f"{group.name}{k + 1}区", parent_id=group.cat_id)
            )
    return groups + leaves


_decode_item = msgspec.json.Decoder(Item).decode


# The hidden attributes the server sorts and filters an item by, as a plain tuple (a
# NamedTuple's __new__ costs ~10x more, and a cold crawl makes one per item served):
# (leaf id, group id, lowest price or inf when the price is "", sales, listing time).
_Entry = tuple[str, str, float, int, int]
_LEAF: Final = 0
_GROUP: Final = 1
_PRICE: Final = 2
_SOLD: Final = 3
_LISTED: Final = 4


class _Generator:
    """Item stream for one shop (``base`` or ``drift``).

    Item ``i`` is a pure function of (name, stream, i): one 64-byte hash supplies all its
    attributes. A benchmark crawl builds every catalogue once, so generation speed is serving
    speed: items are written straight to JSON bytes (every string comes from fixed ASCII/CJK
    word lists, nothing needs escaping) and decoded into :class:`Item` only when asked.
    """

    def __init__(self, name: str, stream: str, leaves: Sequence[Category]) -> None:
        self.name = name
        self.stream = stream
        self.leaves = [
            (c.cat_id, c.parent_id, f'["{c.parent_id}","{c.cat_id}"]', c.name) for c in leaves
        ]
        theme = _THEMES[_digest("theme", name) % len(_THEMES)]
        self.nouns, self.mods, self.uses = theme
        member = 1_000_000_000 + _digest("member", name) % 9_000_000_000
        self.img_tail = f"_!!{member}-0-cib.jpg"
        self.parity = 0 if stream == "base" else 1
        # Listing times increase with the index; drift items are newer than every base item.
        self.epoch = _EPOCH if stream == "drift" else _EPOCH - 126_000_000
        self.ids: set[str] = set()
        self.entries: list[_Entry] = []
        self.encoded: list[bytes] = []

    def ensure(self, n: int) -> None:
        """Generate (and encode) items up to index ``n`` (exclusive)."""
        one, entries, encoded = self._one, self.entries, self.encoded
        for index in range(len(entries), n):
            entry, body = one(index)
            entries.append(entry)
            encoded.append(body)

    def _one(self, index: int) -> tuple[_Entry, bytes]:
        b = hashlib.blake2b(
            f"{self.name}\x1f{self.stream}\x1f{index}".encode(), digest_size=64
        ).digest()
        item_id = _item_id(int.from_bytes(b[48:56], "big"), self.parity)
        if item_id in self.ids:  # keep ids unique within the shop (a 1e-9 event per pair)
            salt = 0
            while item_id in self.ids:
                salt += 1
                item_id = _item_id(
                    _digest("item", self.name, self.stream, index, salt), self.parity
                )
        self.ids.add(item_id)

        mods, nouns = self.mods, self.nouns
        m1 = b[0] % len(mods)
        m2 = (m1 + 1 + b[1] % (len(mods) - 1)) % len(mods)  # two different modifiers
        title = (
            f"{mods[m1]}{mods[m2]}{nouns[b[2] % len(nouns)]}{self.uses[b[3] % len(self.uses)]}"
            f"{' ' if b[4] & 1 else ''}{nouns[b[5] % len(nouns)]}{_SUFFIXES[b[6] % len(_SUFFIXES)]}"
        )
        if b[7] < 230:  # ~90%: the v2 endpoint's odd four-slash form
            key = b2a_base64(b[8:25], newline=False).translate(_ALNUM_ONLY)[:22].decode()
            img = f"https:////cbu01.alicdn.com/img/ibank/O1CN01{key}{self.img_tail}"
        else:  # the protocol-relative form other endpoints use
            n = int.from_bytes(b[8:24], "big")
            img = (
                f"//cbu01.alicdn.com/img/ibank/{2015 + n % 10}/{n // 10 % 1000:03d}/"
                f"{n // 10**4 % 1000:03d}/{n // 10**7 % 10**11}_{n // 10**18 % 10**9}.jpg"
            )

        # Single bytes and byte pairs: int.from_bytes on slices is a visible share of the cost.
        u = (b[25] << 8 | b[26]) / 65536
        cents = 50 + int(10 ** (2 + 3.3 * u * u))  # skewed: most items a few to ~100 yuan
        if b[29] < 10:  # ~4% without a price
            price, price_key = "", _NO_PRICE
        elif b[29] < 41:  # ~12% price ranges
            high = cents + 10 + (b[30] << 8 | b[31]) % max(1, cents // 2)
            price, price_key = f"{cents / 100:.2f}-{high / 100:.2f}", cents / 100
        else:
            price, price_key = f"{cents / 100:.2f}", cents / 100

        v = ((b[32] << 8 | b[33]) + 1) / 65537
        sold = 0 if b[36] < 77 else min(10**6, int(v ** (-1 / 0.9)))  # 30% unsold, Pareto tail
        amount = sold * cents // 100 if b[37] >= 230 and price else 0
        quantity = str(int.from_bytes(b[38:41], "big") % 100_000) if b[41] >= 230 else "null"
        leaf_id, group_id, path, leaf_name = self.leaves[b[42] % len(self.leaves)]
        if b[43] >= 77:  # ~70% hide their category: [] and ""
            path, leaf_name = "[]", ""
        listed_at = self.epoch + index * 600 + (b[44] << 8 | b[45]) % 600
        body = (
            f'{{"item_id":"{item_id}","title":"{title}","img":"{img}","category_path":{path},'
            f'"category_name":"{leaf_name}","price":"{price}","quantity":{quantity},'
            f'"sale_info":{{"sale_quantity":{sold},"sale_amount":{amount}}}}}'
        ).encode()
        return (leaf_id, group_id, price_key, sold, listed_at), body


def _order(entries: Sequence[_Entry], sort: str) -> list[int]:
    idx = range(len(entries))
    if sort == "default":
        return list(idx)
    if sort == "sales":
        return sorted(idx, key=lambda i: (-entries[i][_SOLD], i))
    if sort == "price_up":
        return sorted(idx, key=lambda i: (entries[i][_PRICE], i))
    if sort == "price_down":
        # Items without a price go last in both price orders.
        return sorted(idx, key=lambda i: (entries[i][_PRICE] == _NO_PRICE, -entries[i][_PRICE], i))
    if sort == "time_up":
        return sorted(idx, key=lambda i: (entries[i][_LISTED], i))
    if sort == "time_down":
        return sorted(idx, key=lambda i: (-entries[i][_LISTED], i))
    raise ValueError(f"unknown sort {sort!r}")


def _selects(entry: _Entry, cat: str | None, cat_type: str | None) -> bool:
    if not cat:
        return True
    return entry[_GROUP if cat_type == "1" else _LEAF] == cat


class ShopCatalogue:
    """The catalogue of one shop: ``size`` base items plus up to any number of drift items.

    Items are generated lazily: the ``default`` listing without ``cat`` only builds the items
    up to the page asked for (a crawl reads pages in order), other listings build them all.
    Other listings are cached per (sort, cat, cat_type, drift) as lists of pre-encoded item
    JSON, so a page body is a join of a slice.
    """

    # Whether the default listing's position i is base item i (after the drift): a subclass
    # that reorders or removes items serves every page from the whole listing instead.
    _lazy = True

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.categories = shop_categories(name)
        leaves = [c for c in self.categories if c.parent_id]
        self._base = _Generator(name, "base", leaves)
        self._drift = _Generator(name, "drift", leaves)
        self._orders: dict[str, list[int]] = {}
        self._listings: dict[tuple[str, str | None, str | None, int], list[bytes]] = {}

    def build(self) -> None:
        """Generate every base item now rather than page by page."""
        self._base.ensure(self.size)

    def _rows(self) -> tuple[Sequence[_Entry], Sequence[bytes]]:
        """(sort keys, encoded items) of the catalogue's items, in the ``default`` order."""
        self._base.ensure(self.size)
        return self._base.entries, self._base.encoded

    def _indices(
        self, sort: str, cat: str | None, cat_type: str | None, drift: int
    ) -> tuple[list[int], list[int]]:
        """(drift indices newest first, row indices in ``sort`` order), both filtered."""
        entries, _ = self._rows()
        self._drift.ensure(drift)
        drifted = self._drift.entries
        order = self._orders.get(sort)
        if order is None:
            order = self._orders[sort] = _order(entries, sort)
        d_idx = [j for j in range(drift - 1, -1, -1) if _selects(drifted[j], cat, cat_type)]
        if cat:
            order = [i for i in order if _selects(entries[i], cat, cat_type)]
        return d_idx, order

    def listing(
        self,
        sort: str = "default",
        cat: str | None = None,
        cat_type: str | None = None,
        drift: int = 0,
    ) -> list[bytes]:
        """Encoded items of the whole listing, in served order (drift items first, newest
        first)."""
        key = (sort, cat or None, cat_type if cat else None, drift)
        cached = self._listings.get(key)
        if cached is None:
            d_idx, order = self._indices(sort, cat, cat_type, drift)
            d_enc, b_enc = self._drift.encoded, self._rows()[1]
            cached = [d_enc[j] for j in d_idx] + [b_enc[i] for i in order]
            if len(self._listings) > 64:  # drift makes many generations; keep memory bounded
                self._listings.clear()
            self._listings[key] = cached
        return cached

    def page(
        self,
        sort: str,
        cat: str | None,
        cat_type: str | None,
        drift: int,
        start: int,
        stop: int,
    ) -> tuple[int, list[bytes]]:
        """(total_count, encoded items ``start:stop`` of the listing)."""
        if sort != "default" or cat or not self._lazy:
            listing = self.listing(sort, cat, cat_type, drift)
            return len(listing), listing[start:stop]
        # Fast path: listing position i is drift item drift-1-i, then base item i-drift.
        total = drift + self.size
        stop = min(stop, total)
        self._drift.ensure(drift)
        self._base.ensure(max(0, stop - drift))
        d_enc, b_enc = self._drift.encoded, self._base.encoded
        return total, [
            d_enc[drift - 1 - i] if i < drift else b_enc[i - drift] for i in range(start, stop)
        ]

    def items(
        self,
        sort: str = "default",
        cat: str | None = None,
        cat_type: str | None = None,
        drift: int = 0,
    ) -> list[Item]:
        """Decoded items of the whole listing, in served order."""
        d_idx, order = self._indices(sort, cat, cat_type, drift)
        d_enc, b_enc = self._drift.encoded, self._rows()[1]
        return [_decode_item(d_enc[j]) for j in d_idx] + [_decode_item(b_enc[i]) for i in order]
