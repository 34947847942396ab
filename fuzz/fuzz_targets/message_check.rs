//! Fuzzes the milter's message check: the end-of-message decision in both directions, and
//! the armor and packet checks on their own. It must never panic.
//!
//! The first input byte picks what to do with the rest, so one corpus serves all of them.
//! Run: `cargo fuzz run message_check` (in this directory; nightly, or stable with
//! `RUSTC_BOOTSTRAP=1`). The seed corpus is in `corpus/message_check`.

#![no_main]

use chatmail_common::mailbox::Address;
use chatmail_milter::policy::armor::{ArmorHeaders, check_armored_message};
use chatmail_milter::policy::envelope::{Envelope, Recipient, Sender};
use chatmail_milter::policy::openpgp::check_packets;
use chatmail_milter::policy::{Direction, evaluate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, raw)) = data.split_first() else {
        return;
    };
    let envelope = Envelope {
        sender: Sender::parse("<alice@chat.example.org>"),
        recipients: vec![
            Recipient::Mailbox {
                mailbox: Address::parse("alice@chat.example.org").unwrap(),
                enforces_e2ee: true,
            },
            Recipient::Mailbox {
                mailbox: Address::parse("bob@chat.example.org").unwrap(),
                enforces_e2ee: false,
            },
        ],
    };
    match mode % 4 {
        0 => {
            let _ = evaluate(Direction::Outbound, &envelope, raw);
        }
        1 => {
            let _ = evaluate(Direction::Inbound, &envelope, raw);
        }
        2 => {
            let _ = check_armored_message(raw, ArmorHeaders::Allow);
            let _ = check_armored_message(raw, ArmorHeaders::Refuse);
        }
        _ => {
            let _ = check_packets(raw);
        }
    }
});
