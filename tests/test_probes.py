"""The stand-in layers of :mod:`qnetstack.stack.probes` fail loudly on anything they do not expect."""

from types import SimpleNamespace

import pytest

from qnetstack.entity import EntityError
from qnetstack.link.service import LinkAck, LinkCreate
from qnetstack.stack.probes import LinkClient, NoApplication


class _Ctx(SimpleNamespace):
    def __init__(self, node: str) -> None:
        super().__init__(node=node, sent_down=[])

    def send_down(self, msg: object) -> None:
        self.sent_down.append(msg)


def _unexpected_inputs(entity: object) -> list:
    return [
        lambda: entity.handle_above("a request"),
        lambda: entity.handle_peer("bob", "a peer message"),
        lambda: entity.handle_timer("a tag"),
    ]


@pytest.mark.parametrize("make", [lambda ctx: NoApplication(ctx), lambda ctx: LinkClient(ctx, None)])
def test_every_unexpected_input_is_an_entity_error_naming_the_stand_in_and_its_node(make):
    entity = make(_Ctx("alice"))
    entity.start()
    for feed in _unexpected_inputs(entity):
        with pytest.raises(EntityError, match=rf"^{type(entity).__name__} at alice: "):
            feed()


def test_no_application_refuses_what_comes_from_below():
    with pytest.raises(EntityError, match="^NoApplication at bob: got 'a response' from below"):
        NoApplication(_Ctx("bob")).handle_below("a response")


def test_link_client_sends_its_creates_ignores_acks_and_hands_the_rest_to_on_link():
    create = LinkCreate(remote_node="bob", number=1)

    class Client(LinkClient):
        creates = {"alice": [create]}
        seen: list = []

        def on_link(self, msg):
            self.seen.append(msg)

    ctx = _Ctx("alice")
    client = Client(ctx, None)
    client.start()
    assert ctx.sent_down == [create]
    client.handle_below(LinkAck.model_construct())
    client.handle_below("a delivery")
    assert Client.seen == ["a delivery"]
    with pytest.raises(EntityError, match="^LinkClient at alice: unexpected from the link layer"):
        LinkClient(ctx, None).on_link("a delivery")
