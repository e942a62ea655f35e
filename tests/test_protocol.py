"""The pure protocol: validating a request, and deciphering every kind of answer."""

from __future__ import annotations

import email.utils
import json
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tmapi_async import (
    AuthenticationError,
    BalanceError,
    DecodeError,
    FatalError,
    InvalidParameterError,
    Listing,
    RateLimitError,
    ShopItemsPage,
    ShopQuery,
    Sort,
    TmapiError,
    TransientError,
    UpstreamError,
    normalise_shop_url,
)
from tmapi_async._errors import quote_input
from tmapi_async._models import page_decoder
from tmapi_async._protocol import (
    MAX_RETRY_AFTER,
    SERVICE_HOSTS,
    decipher,
    parse_retry_after,
    validate_page,
)

DATA = Path(__file__).parent / "data"


def body(name: str) -> bytes:
    """The bytes of a sample body in tests/data."""
    return (DATA / name).read_bytes()


def api_msg(name: str) -> str:
    """The ``msg`` of a sample error envelope."""
    return str(json.loads(body(name))["msg"])


# -- shop URLs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://xldjjg.1688.com/", "https://xldjjg.1688.com/"),
        ("https://xldjjg.1688.com", "https://xldjjg.1688.com/"),
        ("http://xldjjg.1688.com/", "https://xldjjg.1688.com/"),
        ("  https://xldjjg.1688.com/  ", "https://xldjjg.1688.com/"),
        ("\thttps://xldjjg.1688.com/\n", "https://xldjjg.1688.com/"),
        ("https://XLDJJG.1688.COM/", "https://xldjjg.1688.com/"),
        ("HTTPS://Xldjjg.1688.com", "https://xldjjg.1688.com/"),
        ("https://xldjjg.1688.com/page/offerlist.htm", "https://xldjjg.1688.com/"),
        (
            "https://xldjjg.1688.com/page/offerlist.htm?spm=a2615&sortType=wangpu_score#top",
            "https://xldjjg.1688.com/",
        ),
        ("https://shop-1234abcd.1688.com/page/index.html", "https://shop-1234abcd.1688.com/"),
        ("https://b2b-22042069.1688.com/", "https://b2b-22042069.1688.com/"),
        ("https://xldjjg.1688.com:443/", "https://xldjjg.1688.com/"),
    ],
)
def test_normalise_shop_url_accepts(raw: str, expected: str) -> None:
    """Shop URLs in any accepted form become the shop's https home page."""
    assert normalise_shop_url(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        None,
        123,
        1688,
        b"https://xldjjg.1688.com/",
        ["https://xldjjg.1688.com/"],
        "xldjjg.1688.com",
        "xldjjg",
        "ftp://xldjjg.1688.com/",
        "file://xldjjg.1688.com/",
        "javascript:alert(1)//xldjjg.1688.com",
        "ws://xldjjg.1688.com/",
        "https://1688.com/",
        "https://www.1688.com/",
        "https://detail.1688.com/offer/1.html",
        "https://s.1688.com/selloffer/offer_search.htm",
        "https://1688.com.evil.com/",
        "https://xldjjg.1688.com.evil.com/",
        "https://evil.com/x.1688.com",
        "https://evil.com/?u=https://xldjjg.1688.com/",
        "https://xldjjg.1688.com@evil.com/",
        "https://a.b.1688.com/",
        "https://xldjjg.2688.com/",
        "https://xldjjg.1688.cn/",
        "https://xldjjg_x.1688.com/",
        "https://-xldjjg.1688.com/",
        "https://",
        "https:///path",
    ],
)
def test_normalise_shop_url_rejects(raw: object) -> None:
    """Anything but an http(s) URL on NAME.1688.com is refused, naming the value."""
    with pytest.raises(InvalidParameterError) as info:
        normalise_shop_url(raw)  # type: ignore[arg-type]
    error = info.value
    assert isinstance(error, ValueError)
    assert isinstance(error, TmapiError)
    assert not isinstance(error, TransientError)
    assert repr(raw) in str(error)
    assert "shop_url" in str(error)


# -- ShopQuery -------------------------------------------------------------------------


def test_build_defaults() -> None:
    """A query built from a URL alone has the documented defaults."""
    query = ShopQuery.build(" http://XLDJJG.1688.com/page/offerlist.htm ")
    assert query == ShopQuery("https://xldjjg.1688.com/", Listing(20, "default", None, None))


def test_build_rejects_bad_shop_url() -> None:
    """ShopQuery.build refuses a bad shop URL like normalise_shop_url does."""
    with pytest.raises(InvalidParameterError, match="evil"):
        ShopQuery.build("https://1688.com.evil.com/")


@pytest.mark.parametrize("page_size", [1, 5, 20, 50, 1000])
def test_build_accepts_page_size(page_size: int) -> None:
    """Any integer page_size >= 1 is accepted and kept."""
    assert ShopQuery.build("https://a.1688.com/", page_size=page_size).page_size == page_size


@pytest.mark.parametrize("page_size", [0, -1, -20, True, False, "20", 20.0, 2.5, None])
def test_build_rejects_page_size(page_size: object) -> None:
    """page_size must be an int >= 1 (not bool, str or float); the error names it."""
    with pytest.raises(InvalidParameterError) as info:
        ShopQuery.build("https://a.1688.com/", page_size=page_size)  # type: ignore[arg-type]
    assert "page_size" in str(info.value)
    assert repr(page_size) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("sort", [s.value for s in Sort])
def test_build_accepts_sort_strings(sort: str) -> None:
    """Each of the six documented sort values is accepted as a string."""
    query = ShopQuery.build("https://a.1688.com/", sort=sort)
    assert query.sort == sort
    assert type(query.sort) is str


@pytest.mark.parametrize("sort", list(Sort))
def test_build_accepts_sort_enum(sort: Sort) -> None:
    """Each Sort member is accepted and stored as its plain string value."""
    query = ShopQuery.build("https://a.1688.com/", sort=sort)
    assert query.sort == sort.value
    assert type(query.sort) is str
    assert f"sort={sort.value}" in query.query


@pytest.mark.parametrize(
    "sort", ["", "Default", "DEFAULT", "price", "sales ", "newest", None, 1, "price-up"]
)
def test_build_rejects_sort(sort: object) -> None:
    """Any other sort is refused, naming the value."""
    with pytest.raises(InvalidParameterError) as info:
        ShopQuery.build("https://a.1688.com/", sort=sort)  # type: ignore[arg-type]
    assert "sort" in str(info.value)
    assert repr(sort) in str(info.value)


@pytest.mark.parametrize(("cat_type", "expected"), [("0", "0"), ("1", "1"), (0, "0"), (1, "1")])
def test_build_accepts_cat_type(cat_type: str | int, expected: str) -> None:
    """cat_type "0"/"1" (or 0/1) is accepted and kept as a string."""
    query = ShopQuery.build("https://a.1688.com/", cat_type=cat_type)
    assert query.cat_type == expected
    assert query.query.endswith(f"&cat_type={expected}")


@pytest.mark.parametrize("cat_type", ["2", 2, "", "01", "true", -1, True, False])
def test_build_rejects_cat_type(cat_type: object) -> None:
    """Any other cat_type is refused, naming the value."""
    with pytest.raises(InvalidParameterError) as info:
        ShopQuery.build("https://a.1688.com/", cat_type=cat_type)  # type: ignore[arg-type]
    assert "cat_type" in str(info.value)
    assert repr(cat_type) in str(info.value)


@pytest.mark.parametrize(
    ("cat", "expected"), [("123", "123"), (123, "123"), (" 456 ", "456"), ("a b", "a b")]
)
def test_build_accepts_cat(cat: str | int, expected: str) -> None:
    """A category id (string or int) is accepted and stripped."""
    assert ShopQuery.build("https://a.1688.com/", cat=cat).cat == expected


@pytest.mark.parametrize("cat", ["", "   "])
def test_build_rejects_blank_cat(cat: str) -> None:
    """A blank category id is refused, naming the value."""
    with pytest.raises(InvalidParameterError) as info:
        ShopQuery.build("https://a.1688.com/", cat=cat)
    assert "cat" in str(info.value)
    assert repr(cat) in str(info.value)


def test_query_encoding_without_options() -> None:
    """The query string percent-encodes shop_url and carries page_size and sort."""
    query = ShopQuery.build("https://xldjjg.1688.com/", page_size=20, sort="default")
    assert query.query == "shop_url=https%3A%2F%2Fxldjjg.1688.com%2F&page_size=20&sort=default"
    assert "apiToken" not in query.query
    assert "page=" not in query.query.replace("page_size=", "")


def test_query_encoding_with_options() -> None:
    """cat is percent-encoded and cat_type appended; the query round-trips."""
    query = ShopQuery.build(
        "https://xldjjg.1688.com/x", page_size=7, sort=Sort.TIME_DOWN, cat="a&b=c d/é", cat_type=1
    )
    assert query.query == (
        "shop_url=https%3A%2F%2Fxldjjg.1688.com%2F&page_size=7&sort=time_down"
        "&cat=a%26b%3Dc%20d%2F%C3%A9&cat_type=1"
    )
    assert parse_qs(query.query, strict_parsing=True) == {
        "shop_url": ["https://xldjjg.1688.com/"],
        "page_size": ["7"],
        "sort": ["time_down"],
        "cat": ["a&b=c d/é"],
        "cat_type": ["1"],
    }


def test_query_is_frozen() -> None:
    """A built query cannot be changed after validation."""
    query = ShopQuery.build("https://a.1688.com/")
    with pytest.raises(AttributeError):
        query.page_size = 0  # type: ignore[misc]


# -- page ------------------------------------------------------------------------------


@pytest.mark.parametrize("page", [1, 2, 100, 10**6])
def test_validate_page_accepts(page: int) -> None:
    """validate_page returns any int >= 1 unchanged."""
    assert validate_page(page) == page


@pytest.mark.parametrize("page", [0, -1, True, False, "1", 1.0, None])
def test_validate_page_rejects(page: object) -> None:
    """validate_page refuses anything but an int >= 1, naming the value."""
    with pytest.raises(InvalidParameterError) as info:
        validate_page(page)  # type: ignore[arg-type]
    assert "page" in str(info.value)
    assert repr(page) in str(info.value)


# -- Retry-After -----------------------------------------------------------------------

NOW = 1445412470.0  # Wed, 21 Oct 2015 07:27:50 GMT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:32:50 GMT", 300.0),
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    """Delta-seconds and HTTP-dates become seconds to wait, never negative."""
    assert parse_retry_after(value, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    ["301", "1e9", "9" * 300, "Wed, 21 Oct 2015 08:27:50 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"],
)
def test_parse_retry_after_is_capped(value: str) -> None:
    """A wait of hours, years or 1e9 seconds is cut to MAX_RETRY_AFTER: no endless pause."""
    assert parse_retry_after(value, now=NOW) == MAX_RETRY_AFTER == 300.0


@pytest.mark.parametrize(
    "value",
    [
        *(None, "", "   ", "soon", "Wed, 99 Foo 2015", "5s", "inf", "nan", "1e400", "\x00"),
        *("Mon, 31 Feb 2020 00:00:00 GMT", "Mon, 01 Jan 99999 00:00:00 GMT"),
        "Mon, 01 Jan 2020 25:61:61 +9999",
    ],
)
def test_parse_retry_after_garbage(value: str | None) -> None:
    """Missing or unreadable Retry-After values give None, not an endless pause."""
    assert parse_retry_after(value, now=NOW) is None


def test_parse_retry_after_date_uses_clock_by_default() -> None:
    """Without now, an HTTP-date is measured from the current time."""
    value = email.utils.formatdate(time.time() + 100, usegmt=True)
    assert parse_retry_after(value) == pytest.approx(100, abs=2)


# -- decipher: success -----------------------------------------------------------------


def test_decipher_success_returns_the_page() -> None:
    """A 200 answer with code 200 gives the decoded page."""
    raw = body("shop_items_example.json")
    page = decipher(200, {}, raw)
    assert isinstance(page, ShopItemsPage)
    assert page == page_decoder.decode(raw).data
    assert page.total_count == 162
    assert [item.item_id for item in page.items] == [
        "765000043412",
        "609958065284",
        "662615039902",
    ]


def test_decipher_loose_page() -> None:
    """A 200 answer with loose types and unknown fields still gives a page."""
    page = decipher(200, {"Content-Type": "application/json"}, body("loose_page.json"))
    assert page.total_count == 162
    assert page.items[0].item_id == "765000043412"


def test_decipher_success_ignores_retry_after() -> None:
    """A Retry-After header on a good page does not make it an error."""
    page = decipher(200, {"Retry-After": "30"}, body("shop_items_example.json"))
    assert len(page.items) == 3


# -- decipher: every error code --------------------------------------------------------

CODES = [
    (401, "error_401.json", AuthenticationError),
    (403, "error_403.json", AuthenticationError),
    (417, "error_417.json", UpstreamError),
    (422, "error_422.json", InvalidParameterError),
    (429, "error_429.json", RateLimitError),
    (439, "error_439.json", BalanceError),
    (499, "error_499.json", UpstreamError),
    (500, "error_500.json", UpstreamError),
    (502, "error_502.json", UpstreamError),
    (503, "error_503.json", UpstreamError),
    (503, "error_503_concurrency.json", RateLimitError),
    (504, "error_504.json", UpstreamError),
    (418, "error_418.json", TransientError),
]
# An HTML page from a proxy carries no message: a 503 there cannot be a concurrency refusal.
HTML_CLASSES: dict[int, type[TmapiError]] = {
    401: AuthenticationError,
    403: AuthenticationError,
    417: UpstreamError,
    422: InvalidParameterError,
    429: RateLimitError,
    439: BalanceError,
    499: UpstreamError,
    500: UpstreamError,
    502: UpstreamError,
    503: UpstreamError,
    504: UpstreamError,
    418: TransientError,
}


@pytest.mark.parametrize(("code", "name", "cls"), CODES)
def test_decipher_http_status_with_json_envelope(
    code: int, name: str, cls: type[TmapiError]
) -> None:
    """An HTTP error status with a JSON envelope raises its class with the API's msg."""
    with pytest.raises(TmapiError) as info:
        decipher(code, {"Content-Type": "application/json"}, body(name))
    error = info.value
    assert type(error) is cls
    assert error.code == code
    assert error.status == code
    assert error.message == api_msg(name)
    assert api_msg(name) in str(error)


@pytest.mark.parametrize(("code", "cls"), sorted(HTML_CLASSES.items()))
def test_decipher_http_status_with_html_body(code: int, cls: type[TmapiError]) -> None:
    """An HTTP error status with an HTML body raises the class for that status."""
    with pytest.raises(TmapiError) as info:
        decipher(code, {"Content-Type": "text/html"}, body("proxy_error.html"))
    error = info.value
    assert type(error) is cls
    assert error.code == code
    assert error.status == code
    assert str(code) in error.message


@pytest.mark.parametrize(("code", "cls"), sorted(HTML_CLASSES.items()))
def test_decipher_http_status_with_empty_body(code: int, cls: type[TmapiError]) -> None:
    """An HTTP error status with no body at all raises the class for that status."""
    with pytest.raises(TmapiError) as info:
        decipher(code, {}, b"")
    assert type(info.value) is cls
    assert (info.value.code, info.value.status) == (code, code)


@pytest.mark.parametrize(("code", "name", "cls"), CODES)
def test_decipher_envelope_code_under_http_200(code: int, name: str, cls: type[TmapiError]) -> None:
    """An envelope code under HTTP 200 raises the same class, with status 200."""
    with pytest.raises(TmapiError) as info:
        decipher(200, {"Content-Type": "application/json"}, body(name))
    error = info.value
    assert type(error) is cls
    assert error.code == code
    assert error.status == 200
    assert error.message == api_msg(name)


@pytest.mark.parametrize(
    ("name", "cls", "code"),
    [
        ("error_439_data_string.json", BalanceError, 439),
        ("error_422_data_list.json", InvalidParameterError, 422),
    ],
)
def test_decipher_envelope_code_with_odd_data(name: str, cls: type[TmapiError], code: int) -> None:
    """An error envelope whose data is not a page still raises by its code."""
    with pytest.raises(TmapiError) as info:
        decipher(200, {}, body(name))
    assert type(info.value) is cls
    assert info.value.code == code
    assert info.value.message == api_msg(name)


@pytest.mark.parametrize(
    ("code", "message"),
    [(429, "HTTP 429"), (503, "HTTP 503"), (500, "HTTP 500"), (401, "HTTP 401")],
)
def test_decipher_error_without_msg_describes_status(code: int, message: str) -> None:
    """An error envelope without msg gets a message naming the HTTP status."""
    with pytest.raises(TmapiError) as info:
        decipher(code, {}, json.dumps({"code": code, "data": None}).encode())
    assert info.value.message == message


def test_decipher_http_status_wins_over_envelope_code() -> None:
    """When status and envelope disagree, the HTTP status decides the class."""
    with pytest.raises(TmapiError) as info:
        decipher(500, {}, body("shop_items_example.json"))
    assert type(info.value) is UpstreamError
    assert info.value.code == 500


@pytest.mark.parametrize(
    ("code", "name", "cls"), [c for c in CODES if issubclass(c[2], FatalError)]
)
def test_fatal_codes_are_not_transient(code: int, name: str, cls: type[TmapiError]) -> None:
    """Authentication and balance errors are fatal, never transient."""
    with pytest.raises(FatalError) as info:
        decipher(code, {}, body(name))
    assert not isinstance(info.value, TransientError)


# -- decipher: Retry-After -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "cls"),
    [
        (429, "error_429.json", RateLimitError),
        (503, "error_503_concurrency.json", RateLimitError),
        (503, "error_503.json", UpstreamError),
        (500, "error_500.json", UpstreamError),
        (200, "error_429.json", RateLimitError),
        (200, "error_503_concurrency.json", RateLimitError),
        (418, "error_418.json", TransientError),
    ],
)
@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("0.25", 0.25)])
def test_decipher_retry_after_seconds(
    status: int, name: str, cls: type[TransientError], header: str, seconds: float
) -> None:
    """A Retry-After header in seconds lands on the transient error's retry_after."""
    with pytest.raises(TransientError) as info:
        decipher(status, {"Retry-After": header}, body(name))
    assert type(info.value) is cls
    assert info.value.retry_after == seconds


def test_decipher_retry_after_http_date() -> None:
    """A Retry-After HTTP-date becomes the seconds until that date."""
    header = email.utils.formatdate(time.time() + 60, usegmt=True)
    with pytest.raises(RateLimitError) as info:
        decipher(429, {"Retry-After": header}, body("error_429.json"))
    assert info.value.retry_after == pytest.approx(60, abs=2)


@pytest.mark.parametrize("headers", [{}, {"Retry-After": "soon"}, {"Content-Type": "x"}])
def test_decipher_without_usable_retry_after(headers: dict[str, str]) -> None:
    """No or an unreadable Retry-After header leaves retry_after None."""
    with pytest.raises(RateLimitError) as info:
        decipher(429, headers, body("error_429.json"))
    assert info.value.retry_after is None


# -- decipher: bodies that are not a page ----------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "truncated.json",
        "empty.json",
        "proxy_error.html",
        "not_object_list.json",
        "not_object_string.json",
        "not_object_null.json",
        "not_object_number.json",
        "data_null.json",
        "data_is_list.json",
        "no_code.json",
        "wrong_items_not_list.json",
        "wrong_total_count_word.json",
        "wrong_page_object.json",
        "wrong_item_id_null.json",
        "wrong_price_object.json",
    ],
)
def test_decipher_unreadable_200_is_decode_error(name: str) -> None:
    """A 200 answer that is not a readable page raises DecodeError, a transient error."""
    with pytest.raises(TmapiError) as info:
        decipher(200, {}, body(name))
    error = info.value
    assert type(error) is DecodeError
    assert isinstance(error, TransientError)
    assert error.status == 200


@pytest.mark.parametrize(
    "raw", [b"\xff\xfe\x00garbage", b"{", b'{"code": 200, "msg": "success", "data": {', b"  "]
)
def test_decipher_raw_garbage_is_decode_error(raw: bytes) -> None:
    """Bytes that are not JSON at all raise DecodeError."""
    with pytest.raises(DecodeError):
        decipher(200, {}, raw)


def test_decipher_decode_error_is_chained_not_msgspec() -> None:
    """The msgspec error is chained as the cause, never raised itself."""
    with pytest.raises(DecodeError) as info:
        decipher(200, {}, body("truncated.json"))
    assert info.value.__cause__ is not None
    assert type(info.value).__module__.startswith("tmapi_async")


# -- hosts that are no shop, and readable messages ---------------------------------------


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("https://m.1688.com/winport/b2b-22042069.html", "open the shop on a computer"),
        ("https://shop.m.1688.com/page/index.html", "open the shop on a computer"),
        ("https://detail.1688.com/offer/609958065284.html", "product page"),
        ("https://s.1688.com/selloffer/offer_search.htm?keywords=x", "1688's own services"),
        ("https://work.1688.com/", "1688's own services"),
        ("https://air.1688.com/app/x.html", "1688's own services"),
        ("https://sale.1688.com/factory/x.html", "1688's own services"),
        ("http://WWW.1688.com/", "1688's own services"),
    ],
)
def test_service_hosts_are_refused_with_the_url_to_use(raw: str, hint: str) -> None:
    """A 1688 service URL is no shop: refused before anything is billed, saying what to
    use instead (the shop's own https://NAME.1688.com/ page)."""
    with pytest.raises(InvalidParameterError) as info:
        normalise_shop_url(raw)
    message = str(info.value)
    assert hint in message
    assert "https://NAME.1688.com/" in message
    assert raw in message


@pytest.mark.parametrize("host", sorted(SERVICE_HOSTS))
def test_every_service_host_is_refused(host: str) -> None:
    """Each documented service host is refused, on any path."""
    with pytest.raises(InvalidParameterError, match=r"not a shop|mobile site"):
        normalise_shop_url(f"https://{host}.1688.com/any/page.html")


def test_a_huge_bad_url_is_quoted_cut_with_its_length() -> None:
    """A 2 MB garbage line is not echoed whole: cut, with its length said."""
    garbage = "https://evil.example/" + "x" * 2_000_000
    with pytest.raises(InvalidParameterError) as info:
        normalise_shop_url(garbage)
    message = str(info.value)
    assert len(message) < 400
    assert f"({len(garbage)} characters)" in message
    assert garbage[:40] in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc", "'abc'"),
        ("a\nb", "'a\\nb'"),
        ("x" * 80, repr("x" * 80)),
        ("x" * 81, repr("x" * 80) + "… (81 characters)"),
        (None, "None"),
        (b"ab", "b'ab'"),
    ],
)
def test_quote_input(text: object, expected: str) -> None:
    """quote_input quotes short input as repr would and cuts long input, saying its length."""
    assert quote_input(text) == expected


def test_quote_input_limit() -> None:
    """The limit is the number of characters shown."""
    assert quote_input("abcdef", limit=3) == "'abc'… (6 characters)"


def test_long_server_message_is_cut_after_scrubbing() -> None:
    """A megabyte msg is cut to a sentence; a token near the cut is scrubbed, not halved."""
    token = "tok-SECRET-123"
    msg = "x" * 195 + token + "y" * 1_000_000
    with pytest.raises(UpstreamError) as info:
        decipher(500, {}, json.dumps({"code": 500, "msg": msg}).encode(), secret=token)
    text = str(info.value)
    assert len(text) < 400
    assert "characters)" in text
    assert "tok-" not in text


@pytest.mark.parametrize(
    "data",
    [
        {"page_size": 0, "total_count": 10, "items": []},
        {"page_size": -1, "total_count": 10, "items": []},
        {"page_size": 20, "total_count": 10**9, "items": []},
        {"page_size": 20, "total_count": 2**63, "items": []},
        {"page_size": 20, "total_count": -5, "items": []},
    ],
)
def test_decipher_absurd_sizes_are_decode_errors(data: dict[str, object]) -> None:
    """Such a page is a DecodeError (transient: retried) that names the field."""
    with pytest.raises(DecodeError) as info:
        decipher(200, {}, json.dumps({"code": 200, "msg": "success", "data": data}).encode())
    field = "page_size" if data["page_size"] != 20 else "total_count"
    assert field in str(info.value)
