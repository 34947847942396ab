//! The dict keys the service understands (pure).
//!
//! Dovecot maps IMAP METADATA entries to dict keys: `/private/<name>` on a mailbox becomes
//! `priv/<mailbox-guid>/<name>`, and server metadata (`GETMETADATA ""`) lives in INBOX's
//! attributes as `shared/<guid>/vendor/vendor.dovecot/pvt/server/<name>`.

/// Prefix of server-info keys after `shared/<guid>/`.
const SERVER_INFO_PREFIX: &str = "vendor/vendor.dovecot/pvt/server/vendor/deltachat/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// `priv/<guid>/devicetoken`
    DeviceToken,
    /// `priv/<guid>/messagenew`, set by the LMTP push hook on each incoming message.
    MessageNew,
    /// `shared/<guid>/vendor/vendor.dovecot/pvt/server/vendor/deltachat/<name>`
    ServerInfo(&'a str),
    /// Anything else.
    Other,
}

pub fn parse(key: &str) -> Key<'_> {
    let mut parts = key.splitn(3, '/');
    let (Some(scope), Some(_guid), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Key::Other;
    };
    match (scope, rest) {
        ("priv", "devicetoken") => Key::DeviceToken,
        ("priv", "messagenew") => Key::MessageNew,
        ("shared", rest) => match rest.strip_prefix(SERVER_INFO_PREFIX) {
            Some(name) if !name.is_empty() => Key::ServerInfo(name),
            _ => Key::Other,
        },
        _ => Key::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let guid = "43f5f508a7ea0366dff30200c15250e3";
        assert_eq!(parse(&format!("priv/{guid}/devicetoken")), Key::DeviceToken);
        assert_eq!(parse(&format!("priv/{guid}/messagenew")), Key::MessageNew);
        assert_eq!(
            parse(&format!(
                "shared/{guid}/vendor/vendor.dovecot/pvt/server/vendor/deltachat/turn"
            )),
            Key::ServerInfo("turn")
        );
        for other in [
            "wrong/prefix/key".to_string(),
            "vendor/deltachat/unknown".into(),
            "priv/123/chatmail".into(),
            format!("priv/{guid}/devicetoken/x"),
            format!("shared/{guid}/devicetoken"),
            format!("priv/{guid}/vendor/vendor.dovecot/pvt/server/vendor/deltachat/turn"),
            format!("shared/{guid}/vendor/vendor.dovecot/pvt/server/vendor/deltachat/"),
            "priv/devicetoken".into(),
            String::new(),
        ] {
            assert_eq!(parse(&other), Key::Other, "{other}");
        }
    }
}
