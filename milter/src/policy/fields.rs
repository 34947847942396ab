//! Top-level header fields by name, raw (for rules that must see every occurrence).

use mail_parser::Message;

/// The raw values of every top-level header field called `name`, trimmed.
pub fn values<'a>(msg: &'a Message<'_>, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    let raw = msg.raw_message();
    msg.root_part()
        .headers
        .iter()
        .filter(move |h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(move |h| {
            raw.get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default()
                .trim_ascii()
        })
}

/// The value of a field that must occur once; `None` if absent or repeated.
pub fn single<'a>(msg: &'a Message<'_>, name: &'a str) -> Option<&'a [u8]> {
    let mut all = values(msg, name);
    let first = all.next()?;
    all.next().is_none().then_some(first)
}
