"""Real Delta Chat cores (deltachat-rpc-server) on the relay, configured from dclogin: links."""


def test_exchange_messages_both_ways(dc_factory):
    ac1, ac2 = dc_factory.online_accounts(2)
    # vCard key exchange: each side learns the other's key from a chat created with it.
    chat12 = ac1.create_chat(ac2)
    ac2.create_chat(ac1)

    chat12.send_text("hello from ac1")
    msg = ac2.wait_for_incoming_msg().get_snapshot()
    assert msg.text == "hello from ac1"
    assert msg.show_padlock

    msg.chat.send_text("hello back from ac2")
    reply = ac1.wait_for_incoming_msg().get_snapshot()
    assert reply.text == "hello back from ac2"
    assert reply.show_padlock


def test_securejoin_then_message(dc_factory):
    inviter, joiner = dc_factory.online_accounts(2)
    qr = inviter.get_qr_code()
    joiner.secure_join(qr)
    inviter.wait_for_securejoin_inviter_success()
    joiner.wait_for_securejoin_joiner_success()

    chat = joiner.create_chat(inviter)
    chat.send_text("verified hello")
    msg = inviter.wait_for_incoming_msg().get_snapshot()
    assert msg.text == "verified hello"
    assert msg.show_padlock
