"""Properties of spycloud/batching.py, for any list of addresses and any page SpyCloud could send.

A list answer is either read whole (every record filed under the address it is about, every
address present, an empty answer only once lists are proven) or refused (None), in which case
the addresses are asked one by one; the relay's tests over HTTP show what each refusal costs.
"""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spycloud_relay.spycloud.batching import OFF, PROVEN, UNKNOWN, EmailBatching, account
from spycloud_relay.spycloud.models import Observable

pytestmark = pytest.mark.pure
FAST = settings.get_current_profile_name() == 'fast'
PROPERTIES = settings(max_examples=30 if FAST else 300, deadline=None, derandomize=True)

LOCAL = st.text('abcXYZ09._+-', min_size=1, max_size=8)
ADDRESSES = st.builds(lambda local, host: f'{local}@{host}.example', LOCAL, LOCAL)
ODD_VALUES = st.sampled_from(['', ' ', 'a@b,c@d', 'two words@x.example', 'no-at-sign', 'a@b@c'])
STATES = st.sampled_from([UNKNOWN, PROVEN])


def email(value):
    return Observable('email', value)


def recased(draw, value):
    """The address as SpyCloud may write it: another case, spaces around it."""
    flips = draw(st.lists(st.booleans(), min_size=len(value), max_size=len(value)))
    text = ''.join(c.swapcase() if flip else c for c, flip in zip(value, flips, strict=True))
    return draw(st.sampled_from(['', ' '])) + text + draw(st.sampled_from(['', '\t']))


@st.composite
def list_answers(draw):
    """(members, page): up to ten addresses and a page about them, strangers, or nothing."""
    members = [email(v) for v in draw(st.lists(ADDRESSES, min_size=2, max_size=10))]
    records = []
    for index in range(draw(st.integers(0, 12))):
        about = draw(
            st.one_of(
                st.sampled_from([m.value for m in members]).map(lambda v: ('member', v)),
                st.just(('stranger', 'stranger@elsewhere.example')),
                st.sampled_from([('odd', None), ('odd', 7), ('odd', ['x'])]),
            )
        )
        kind, value = about
        record = {'document_id': f'd{index}', 'severity': 20}
        if kind == 'member':
            record['email'] = recased(draw, value)
        elif value is not None:
            record['email'] = value
        records.append(draw(st.sampled_from([record, record, record, 'not a record'])))
    cursor = draw(st.sampled_from([None, '', '  ', 'next-page', 5]))
    page = {'results': records if records or draw(st.booleans()) else None}
    if cursor is not None:
        page['cursor'] = cursor
    return members, page


@PROPERTIES
@given(list_answers(), STATES)
def test_a_list_answer_is_read_whole_or_not_at_all(answer, state):
    members, page = answer
    batching = EmailBatching(10)
    batching.state = state
    found = batching.read(page, members)
    results = page['results'] if isinstance(page['results'], list) else None
    cursor = page.get('cursor')
    if results is None or (isinstance(cursor, str) and cursor.strip()):
        assert found is None
    if found is None:
        assert batching.state in (state, PROVEN)
        return
    assert set(found) == {account(m.value) for m in members}
    for address, records in found.items():
        assert all(account(r['email']) == address for r in records)
    placed = Counter(id(r) for records in found.values() for r in records)
    assert placed == Counter(id(r) for r in results)  # each record once, none dropped
    if not results:
        assert state == PROVEN  # an empty list answer is trusted only once proven
    assert batching.state == PROVEN  # a record about a member is the proof


@PROPERTIES
@given(
    st.lists(
        st.one_of(
            ADDRESSES.map(email),
            ODD_VALUES.map(email),
            st.builds(lambda v: Observable('user', v), LOCAL),
        ),
        max_size=40,
    ),
    st.integers(1, 10),
    st.sampled_from([UNKNOWN, PROVEN, OFF]),
)
def test_every_observable_is_in_one_group_and_lists_hold_plain_addresses(observables, size, state):
    batching = EmailBatching(size)
    batching.state = state
    groups = batching.groups(observables)
    assert Counter(id(o) for g in groups for o in g) == Counter(id(o) for o in observables)
    for group in groups:
        assert 1 <= len(group) <= (1 if state == OFF else size)
        if len(group) > 1:
            assert all(o.type == 'email' for o in group)
            assert all(',' not in o.value and ' ' not in o.value.strip() for o in group)
            assert all(o.value.count('@') == 1 for o in group)


def test_one_address_per_call_turns_lists_off_from_the_start():
    batching = EmailBatching(1)
    assert batching.state == OFF
    batching.refused()
    assert batching.state == OFF
    values = ['a@x.example', 'b@x.example']
    assert batching.groups([email(v) for v in values]) == [[email(values[0])], [email(values[1])]]


def test_a_refusal_after_the_proof_changes_nothing():
    batching = EmailBatching(10)
    members = [email('a@x.example'), email('b@x.example')]
    assert batching.read({'results': [{'email': 'A@X.example'}]}, members) is not None
    batching.refused()
    batching.asked_alone({'results': []}, exposed=True)
    assert batching.state == PROVEN


def test_lists_turned_off_are_never_proven_afterwards():
    """A request that grouped its addresses before another turned lists off may still bring a
    list answer: it is used, but the state stays where it moved first."""
    batching = EmailBatching(10)
    batching.refused()
    members = [email('a@x.example'), email('b@x.example')]
    found = batching.read({'results': [{'email': 'a@x.example'}]}, members)
    assert found == {'a@x.example': [{'email': 'a@x.example'}], 'b@x.example': []}
    assert batching.state == OFF
    batching.asked_alone({'results': []}, exposed=True)
    assert batching.state == OFF


def test_look_alikes_and_values_a_gateway_may_split_are_asked_alone():
    odd = ['\u212aate@x.example', 'k\u0130m@x.example', 'a%2Cb@x.example', 'a,b@x.example']
    plain = ['kate@x.example', 'Kim@x.example']
    groups = EmailBatching(10).groups([email(v) for v in plain + odd])
    assert [[o.value for o in g] for g in groups] == [plain] + [[v] for v in odd]
    assert account('\u212aATE@X.example') == '\u212aate@x.example'  # only ASCII is folded
