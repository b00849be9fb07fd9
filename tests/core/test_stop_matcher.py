"""The C stop-sequence matcher against a plain substring search, over random token splits."""

from hypothesis import given, settings
from hypothesis import strategies as st

from edgecomplete._native import ffi, lib

from . import reference

# A small alphabet with multi-byte characters makes overlaps and partial matches common.
ALPHABET = "ab\n .é€😀"
texts = st.text(alphabet=ALPHABET, min_size=0, max_size=60)
stop_lists = st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=6), min_size=1, max_size=5)


def matcher(stops):
    data = b"".join(stops)
    handle = lib.ec_stop_matcher_new(data, [len(s) for s in stops], len(stops))
    assert handle != ffi.NULL, ffi.string(lib.ec_last_error())
    return ffi.gc(handle, lib.ec_stop_matcher_free)


@st.composite
def split_bytes(draw, data: bytes):
    """Random token boundaries, also inside UTF-8 characters."""
    cuts = sorted(draw(st.sets(st.integers(1, max(len(data) - 1, 1)), max_size=len(data))))
    bounds = [0] + [c for c in cuts if c < len(data)] + [len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=2000, deadline=None)
@given(text=texts, stops=stop_lists, data=st.data())
def test_first_match_and_cut_equal_substring_search(text, stops, data):
    stops = [s.encode() for s in stops]
    pieces = data.draw(split_bytes(text.encode()))
    m = matcher(stops)
    found = None
    fed = b""
    for k, piece in enumerate(pieces):
        cut = lib.ec_stop_matcher_feed(m, piece, len(piece))
        fed += piece
        if cut >= 0:
            found = (k, cut)
            break
        assert lib.ec_stop_matcher_pending(m) == reference.pending(fed, stops)
    assert found == reference.first_stop(pieces, stops)


@settings(max_examples=500, deadline=None)
@given(prefix=texts, stop=st.text(alphabet=ALPHABET, min_size=2, max_size=8), data=st.data())
def test_a_stop_spanning_tokens_is_found_where_it_starts(prefix, stop, data):
    text = (prefix + stop + "tail").encode()
    pieces = data.draw(split_bytes(text))
    m = matcher([stop.encode()])
    cut = -1
    for piece in pieces:
        cut = lib.ec_stop_matcher_feed(m, piece, len(piece))
        if cut >= 0:
            break
    assert cut == text.find(stop.encode())


def test_overlapping_stops_cut_at_the_earliest_start():
    m = matcher([b"bc", b"abcd"])
    assert lib.ec_stop_matcher_feed(m, b"xab", 3) == -1
    assert lib.ec_stop_matcher_pending(m) == 2  # "ab" may begin "abcd"
    # "bc" ends first, but "abcd" ends in the same token and starts earlier: cut there.
    assert lib.ec_stop_matcher_feed(m, b"cd", 2) == 1


def test_matcher_refuses_bad_input():
    assert lib.ec_stop_matcher_new(b"ab", [0], 1) == ffi.NULL
    assert b"empty" in ffi.string(lib.ec_last_error())
    assert lib.ec_stop_matcher_new(ffi.NULL, ffi.NULL, 2) == ffi.NULL
    assert lib.ec_stop_matcher_new(b"ab", [2], -1) == ffi.NULL
    m = matcher([b"x"])
    assert lib.ec_stop_matcher_feed(m, ffi.NULL, 5) == lib.EC_ERR_ARGUMENT
    assert lib.ec_stop_matcher_feed(ffi.NULL, b"x", 1) == lib.EC_ERR_ARGUMENT
