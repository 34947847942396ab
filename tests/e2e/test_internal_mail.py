"""Mail that Postfix makes or takes without SMTP goes through the milter's internal listener
(`non_smtpd_milters`), also on the default IP-only relay, which signs nothing:

- sendmail(1) on the relay's machine: cleartext to a local account is refused, never
  delivered (Postfix returns it to the sender as a bounce); encrypted mail is delivered;
- Postfix's bounces pass: a message whose recipient's mailbox vanished while it was queued is
  refused by Dovecot's LMTP at delivery, and the bounce arrives in the sender's inbox.
"""

from __future__ import annotations

import email
import email.utils
import shutil
import subprocess
import time

from relaytest import account_on_disk, create_account, local_delivery_deferred, queued_for, wait_for
from test_milter import encrypted_message, inbox, log_offset, milter_log_since, plain_message, submit

SENDMAIL = "/usr/sbin/sendmail"


def sendmail(sender: str, rcpt: str, msg: str) -> None:
    """sendmail(1) as root would inject it: pickup, then cleanup with non_smtpd_milters."""
    subprocess.run([SENDMAIL, "-f", sender, "--", rcpt], input=msg.encode(), check=True, timeout=30)


def is_bounce(raw: bytes) -> bool:
    msg = email.message_from_bytes(raw)
    sender = email.utils.parseaddr(msg.get("From", ""))[1].lower()
    return sender.startswith("mailer-daemon@") and msg.get_content_type() == "multipart/report"


def bounces(acc) -> list[bytes]:
    return [m for m in inbox(acc) if is_bounce(m)]


def test_sendmail_cleartext_is_refused_and_returned_to_the_sender(relay):
    alice, bob = create_account(relay), create_account(relay)
    offset = log_offset()
    sendmail(bob.addr, alice.addr, plain_message(bob.addr, alice.addr, "cleartext via sendmail"))

    bounce = wait_for(lambda: bounces(bob), timeout=30, what="the bounce to the sender")
    assert b"Encryption Needed" in bounce[0] and alice.addr.encode() in bounce[0]
    assert b"cleartext via sendmail" not in bounce[0], "the bounce returned the body"
    log = milter_log_since(offset)
    assert f"Rejected unencrypted mail from: {bob.addr}" in log, log
    assert "Internal: Filtering mailer-daemon message" in log, log
    assert inbox(alice) == []


def test_sendmail_encrypted_is_delivered(relay):
    alice, bob = create_account(relay), create_account(relay)
    sendmail(bob.addr, alice.addr, encrypted_message(bob.addr, alice.addr))
    wait_for(lambda: inbox(alice), timeout=30, what="delivery")
    assert bounces(bob) == []


def test_bounce_of_a_refused_delivery_arrives(relay):
    alice, carol = create_account(relay), account_on_disk(relay)
    offset = log_offset()
    with local_delivery_deferred():
        assert submit(alice, [carol.addr], encrypted_message(alice.addr, carol.addr)) == {}
        wait_for(lambda: queued_for(carol.addr), timeout=20, what="the message in the queue")
        # The account goes away while the message waits: LMTP refuses it at delivery.
        shutil.rmtree(relay.mailbox_dir(carol.addr))

    bounce = wait_for(lambda: bounces(alice), timeout=30, what="the bounce to the sender")
    assert carol.addr.encode() in bounce[0]
    # Only the headers of the message come back (bounce_size_limit = 1), never its body.
    parts = [p.get_content_type() for p in email.message_from_bytes(bounce[0]).walk()]
    assert "text/rfc822-headers" in parts and "message/rfc822" not in parts, parts
    assert b"-----BEGIN PGP MESSAGE-----" not in bounce[0]
    assert "Internal: Filtering mailer-daemon message" in milter_log_since(offset)
    time.sleep(0.5)
    assert not relay.mailbox_dir(carol.addr).exists(), "delivered all the same"
