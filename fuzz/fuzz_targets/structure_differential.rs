//! Differential fuzzing of the milter's reading of MIME against `mailparse`, the parser
//! Delta Chat reads delivered mail with: it fails whenever the milter accepts a message
//! (encrypted, Secure-Join, Autocrypt Setup Message, bounce; outbound, inbound, internal)
//! that `mailparse` reads differently: another tree of parts, other types, other values in
//! the parts and fields the accepting rule read.
//!
//! The comparison is `milter/tests/differential/mod.rs`, shared with
//! `cargo test -p chatmail-milter --test structure_differential`, which replays the corpus.
//! Run: `cargo fuzz run structure_differential -- -dict=mime.dict -max_len=8192` (in this
//! directory; nightly, or stable with `RUSTC_BOOTSTRAP=1`). The seed corpus is in
//! `corpus/structure_differential`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../milter/tests/differential/mod.rs"]
mod differential;

fuzz_target!(|data: &[u8]| {
    if let Err(disagreement) = differential::check(data) {
        panic!("{disagreement}");
    }
});
