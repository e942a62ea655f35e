"""Decoding the shop-items answer into typed models, and the models' normalisations."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tmapi_async import SaleInfo, ShopItem, ShopItemsPage, Sort, normalise_image_url
from tmapi_async._models import MAX_PAGE_SIZE, MAX_TOTAL_COUNT, Envelope, page_decoder

DATA = Path(__file__).parent / "data"


def body(name: str) -> bytes:
    """The bytes of a sample body in tests/data."""
    return (DATA / name).read_bytes()


def envelope_with_items(*items: dict[str, object]) -> bytes:
    """A code-200 envelope holding ``items`` on a one-page listing."""
    data = {"page": 1, "page_size": 20, "total_count": len(items), "items": list(items)}
    return json.dumps({"code": 200, "msg": "success", "data": data}).encode()


def decode_item(**fields: object) -> ShopItem:
    """Decode one item with ``fields`` through the production decoder."""
    page = page_decoder.decode(envelope_with_items({"item_id": "1", **fields})).data
    assert page is not None
    return page.items[0]


# -- the documented example ------------------------------------------------------------


def test_example_decodes_to_envelope_and_page() -> None:
    """The endpoint page's example decodes into an Envelope holding a ShopItemsPage."""
    envelope = page_decoder.decode(body("shop_items_example.json"))
    assert isinstance(envelope, Envelope)
    assert envelope.code == 200
    assert envelope.msg == "success"
    page = envelope.data
    assert isinstance(page, ShopItemsPage)
    assert (page.page, page.page_size, page.total_count) == (1, 3, 162)
    assert page.cat_id == ""
    assert page.sort == "default"
    assert len(page.items) == 3


def test_example_items_are_typed_and_normalised() -> None:
    """Every field of the example's items lands typed, with images repaired."""
    page = page_decoder.decode(body("shop_items_example.json")).data
    assert page is not None
    first = page.items[0]
    assert isinstance(first, ShopItem)
    assert first.item_id == "765000043412"
    assert first.title == "左手理发牙剪 CNC牙剪打薄剪 左手剪刀专业理发美发牙剪 理发店"
    assert first.img == (
        "https://cbu01.alicdn.com/img/ibank/O1CN01LwXIfD1F0EqsmPKl9_!!1000960424-0-cib.jpg"
    )
    assert first.category_path == ()
    assert first.category_name == ""
    assert first.price == "298.00"
    assert first.quantity is None
    assert first.sale_info == SaleInfo(sale_quantity=1, sale_amount=0)
    assert [item.item_id for item in page.items] == [
        "765000043412",
        "609958065284",
        "662615039902",
    ]
    assert [item.price_min for item in page.items] == [
        Decimal("298.00"),
        Decimal("155.00"),
        Decimal("105.00"),
    ]
    assert [item.sale_info.sale_quantity for item in page.items if item.sale_info] == [1, 7, 58]
    assert all(item.img.startswith("https://cbu01.alicdn.com/img/") for item in page.items)


# -- tolerance -------------------------------------------------------------------------


def test_loose_page_decodes() -> None:
    """Int item_id, string total_count, null quantity and unknown fields all decode."""
    envelope = page_decoder.decode(body("loose_page.json"))
    assert envelope.code == 200
    page = envelope.data
    assert page is not None
    assert page.total_count == 162
    assert (page.page, page.page_size, page.cat_id, page.sort) == (2, 2, "1234", "sales")
    first, second = page.items
    assert first.item_id == "765000043412"
    assert isinstance(first.item_id, str)
    assert first.quantity is None
    assert first.sale_info == SaleInfo(sale_quantity=3, sale_amount=0)
    assert first.img == "https://cbu01.alicdn.com/img/a.jpg"
    assert second.item_id == "609958065284"
    assert second.quantity == 120
    assert second.category_path == ("Tools", "Scissors")
    assert second.category_name == "Scissors"
    assert second.sale_info is None
    assert second.img == "https://cbu01.alicdn.com/img/b.jpg"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (765000043412, "765000043412"),
        ("765000043412", "765000043412"),
        (0, "0"),
        (1, "1"),
        ("abc-1", "abc-1"),
    ],
)
def test_item_id_is_always_a_string(raw: object, expected: str) -> None:
    """item_id, int or string on the wire, is a string on the model."""
    item = decode_item(item_id=raw)
    assert item.item_id == expected
    assert type(item.item_id) is str


@pytest.mark.parametrize(("raw", "expected"), [("162", 162), (162, 162), ("0", 0), (0, 0)])
def test_total_count_int_or_numeric_string(raw: object, expected: int) -> None:
    """total_count decodes from an int or a numeric string to an int."""
    data = {"page": 1, "page_size": 20, "total_count": raw, "items": []}
    page = page_decoder.decode(json.dumps({"code": 200, "data": data})).data
    assert page is not None
    assert page.total_count == expected
    assert type(page.total_count) is int


@pytest.mark.parametrize(("raw", "expected"), [(None, None), (0, 0), (5, 5), ("7", 7)])
def test_quantity_null_or_number(raw: object, expected: int | None) -> None:
    """quantity may be null; numbers (also numeric strings) decode as ints."""
    assert decode_item(quantity=raw).quantity == expected


def test_quantity_missing_is_none() -> None:
    """An item without quantity decodes with quantity None."""
    assert decode_item().quantity is None


def test_minimal_item_has_defaults() -> None:
    """An item with only an id gets empty defaults for everything else."""
    item = decode_item()
    assert item == ShopItem(item_id="1")
    assert (item.title, item.img, item.category_name, item.price) == ("", "", "", "")
    assert item.category_path == ()
    assert item.sale_info is None


@pytest.mark.parametrize(
    "where",
    ["top", "data", "item", "sale_info"],
)
def test_unknown_fields_are_ignored(where: str) -> None:
    """Fields the models do not know are ignored at every level."""
    extra = {"brand_new_field": {"nested": [1, 2, 3]}, "another": "x"}
    item: dict[str, object] = {
        "item_id": "9",
        "price": "1.00",
        "sale_info": {"sale_quantity": 2, "sale_amount": 1.5},
    }
    data: dict[str, object] = {"page": 1, "page_size": 20, "total_count": 1, "items": [item]}
    envelope: dict[str, object] = {"code": 200, "msg": "success", "data": data}
    target = {"top": envelope, "data": data, "item": item, "sale_info": item["sale_info"]}
    target[where].update(extra)  # type: ignore[attr-defined]
    page = page_decoder.decode(json.dumps(envelope)).data
    assert page is not None
    assert page.items == [
        ShopItem(item_id="9", price="1.00", sale_info=SaleInfo(sale_quantity=2, sale_amount=1.5))
    ]


@pytest.mark.parametrize("path", [[], ["a"], ["a", "b"], [1, 2]])
def test_category_path_lists(path: list[object]) -> None:
    """category_path decodes as given, the empty list included, as an immutable tuple."""
    assert decode_item(category_path=path).category_path == tuple(path)


def test_category_path_default_is_empty() -> None:
    """An item without category_path has an empty one."""
    assert ShopItem(item_id="a").category_path == ()


@pytest.mark.parametrize(
    "name",
    [
        "wrong_items_not_list.json",
        "wrong_total_count_word.json",
        "wrong_page_object.json",
        "wrong_item_id_null.json",
        "wrong_price_object.json",
    ],
)
def test_wrong_types_fail_validation(name: str) -> None:
    """A page whose fields have the wrong types is refused by the decoder."""
    with pytest.raises(msgspec.ValidationError):
        page_decoder.decode(body(name))


def test_sort_enum_values() -> None:
    """Sort offers exactly the six documented values, as strings."""
    assert [s.value for s in Sort] == [
        "default",
        "sales",
        "price_up",
        "price_down",
        "time_up",
        "time_down",
    ]
    assert Sort.PRICE_UP == "price_up"


# -- images ----------------------------------------------------------------------------

IMAGES = [
    ("https:////cbu01.alicdn.com/img/x.jpg", "https://cbu01.alicdn.com/img/x.jpg"),
    ("https:///cbu01.alicdn.com/img/x.jpg", "https://cbu01.alicdn.com/img/x.jpg"),
    ("//cbu01.alicdn.com/img/x.jpg", "https://cbu01.alicdn.com/img/x.jpg"),
    ("http://cbu01.alicdn.com/img/x.jpg", "https://cbu01.alicdn.com/img/x.jpg"),
    ("http:////cbu01.alicdn.com/img/x.jpg", "https://cbu01.alicdn.com/img/x.jpg"),
    ("https://cbu01.alicdn.com/img/x.jpg", "https://cbu01.alicdn.com/img/x.jpg"),
    (
        "https://cbu01.alicdn.com/img/ibank/O1CN01_!!1000960424-0-cib.jpg?x=1#f",
        "https://cbu01.alicdn.com/img/ibank/O1CN01_!!1000960424-0-cib.jpg?x=1#f",
    ),
    ("", ""),
    ("img/ibank/x.jpg", "img/ibank/x.jpg"),
    ("x.jpg", "x.jpg"),
    # A path-absolute reference names no host: it must not be turned into one.
    ("/img/ibank/x.jpg", "/img/ibank/x.jpg"),
]


@pytest.mark.parametrize(("raw", "expected"), IMAGES)
def test_normalise_image_url(raw: str, expected: str) -> None:
    """normalise_image_url repairs scheme and slashes and leaves relative URLs alone."""
    assert normalise_image_url(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), IMAGES)
def test_image_normalised_when_decoded(raw: str, expected: str) -> None:
    """Decoding an item applies the same image normalisation."""
    assert decode_item(img=raw).img == expected


@pytest.mark.parametrize(("raw", "expected"), IMAGES)
def test_normalise_image_url_is_idempotent(raw: str, expected: str) -> None:
    """Normalising a normalised URL changes nothing."""
    assert normalise_image_url(normalise_image_url(raw)) == expected


# -- prices ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "low", "high"),
    [
        ("298.00", Decimal("298.00"), Decimal("298.00")),
        ("0.50", Decimal("0.50"), Decimal("0.50")),
        ("25.90-29.89", Decimal("25.90"), Decimal("29.89")),
        ("25.90 - 29.89", Decimal("25.90"), Decimal("29.89")),
        (" 7 ", Decimal("7"), Decimal("7")),
        ("", None, None),
        ("   ", None, None),
        ("abc", None, None),
        ("¥298.00", None, None),
        ("25.90-abc", None, None),
        ("abc-29.89", None, None),
        ("1-2-3", None, None),
        ("NaN", None, None),
        ("Infinity", None, None),
    ],
)
def test_price_bounds(price: str, low: Decimal | None, high: Decimal | None) -> None:
    """price_min/price_max read a price, a range, empty and garbage strings."""
    item = ShopItem(item_id="1", price=price)
    assert item.price == price  # the API's string is kept as is
    assert item.price_min == low
    assert item.price_max == high
    if low is not None:
        assert isinstance(item.price_min, Decimal)
        assert item.price_min.is_finite()


def test_price_accessors_after_decoding() -> None:
    """A decoded range price gives Decimal bounds and keeps the string."""
    item = decode_item(price="25.90-29.89")
    assert item.price == "25.90-29.89"
    assert (item.price_min, item.price_max) == (Decimal("25.90"), Decimal("29.89"))


def decode_page(**data: object) -> ShopItemsPage:
    """A page decoded from ``data`` (page 1, no items unless given)."""
    page = page_decoder.decode(json.dumps({"code": 200, "data": {"items": [], **data}})).data
    assert page is not None
    return page


@pytest.mark.parametrize(
    "data",
    [
        {"page_size": 0},
        {"page_size": -20},
        {"page_size": MAX_PAGE_SIZE + 1},
        {"page_size": 10**15},
        {"total_count": -1},
        {"total_count": MAX_TOTAL_COUNT + 1},
        {"total_count": 10**15},
        {"total_count": 2**63},
        {"total_count": "1000000000"},
    ],
)
def test_absurd_sizes_fail_validation(data: dict[str, object]) -> None:
    """A page_size or total_count zero, negative or absurd never reaches a plan."""
    with pytest.raises(msgspec.ValidationError):
        decode_page(**data)


def test_sizes_at_their_bounds_decode() -> None:
    """The bounds themselves are valid; a missing page_size stays 0 (no claim made)."""
    page = decode_page(page_size=MAX_PAGE_SIZE, total_count=MAX_TOTAL_COUNT)
    assert (page.page_size, page.total_count) == (MAX_PAGE_SIZE, MAX_TOTAL_COUNT)
    assert decode_page(page_size=1, total_count=0).page_size == 1
    assert decode_page().page_size == 0
