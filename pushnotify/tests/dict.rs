//! The dict protocol over a real unix socket, as Dovecot speaks it.

mod support;

use support::gateway::{StandIn, always};
use support::{Client, Harness, USER, fast_schedule};

const SERVER: &str =
    "shared/43f5f508a7ea0366dff30200c15250e3/vendor/vendor.dovecot/pvt/server/vendor/deltachat/";

#[tokio::test]
async fn tokens_accumulate_and_are_returned_in_order() {
    let gw = StandIn::http(always(200)).await;
    let mut h = Harness::new();
    h.start(&gw.url, fast_schedule()).await;
    let mut c = h.client().await;
    assert_eq!(c.get_tokens(USER).await, "O");
    assert_eq!(c.set_token(USER, "1111").await, "O1");
    assert_eq!(c.get_tokens(USER).await, "O1111");
    assert_eq!(c.set_token(USER, "2222").await, "O2");
    assert_eq!(c.get_tokens(USER).await, "O1111 2222");
    // re-setting keeps the order
    assert_eq!(c.set_token(USER, "1111").await, "O3");
    assert_eq!(c.get_tokens(USER).await, "O1111 2222");
    // another connection may reuse transaction ids and sees the same tokens
    let mut c2 = h.client().await;
    assert_eq!(c2.set_token(USER, "3333").await, "O1");
    assert_eq!(c.get_tokens(USER).await, "O1111 2222 3333");
    let file = std::fs::read_to_string(h.metadata_json(USER)).unwrap();
    assert!(file.starts_with(r#"{"devicetoken": {"1111": "#), "{file}");
    assert_eq!(gw.count(), 0);
}

#[tokio::test]
async fn the_reference_protocol_example() {
    let gw = StandIn::http(always(200)).await;
    let mut h = Harness::new();
    h.start(&gw.url, fast_schedule()).await;
    let mut c = Client::connect(&h.socket).await;
    c.send("Btx00\tuser@example.org").await;
    std::fs::create_dir_all(h.mailboxes.join("user@example.org")).unwrap();
    c.send("Stx00\tpriv/guid00/devicetoken\t01234").await;
    c.send("Ctx00").await;
    assert_eq!(c.read_line().await, "Otx00");
    assert_eq!(c.get_tokens("user@example.org").await, "O01234");
    c.send("I0\t0\tpriv/guid00/\tuser@example.org").await;
    assert_eq!(c.read_line().await, "");
}

#[tokio::test]
async fn other_keys_and_bad_requests() {
    let gw = StandIn::http(always(200)).await;
    let mut h = Harness::new();
    h.start(&gw.url, fast_schedule()).await;
    let mut c = h.client().await;
    for key in [
        "wrong/prefix/key",
        "vendor/deltachat/unknown",
        "priv/123/chatmail",
        "priv/123/messagenew",
    ] {
        assert_eq!(c.lookup(key, USER).await, "N", "{key}");
    }
    assert_eq!(c.lookup(&format!("{SERVER}unknown"), USER).await, "N");
    // SETMETADATA of anything else fails
    let reply = c.set(USER, "priv/123/chatmail", "x").await;
    assert!(reply.starts_with("F1\tunsupported key"), "{reply}");
    // unsets are ignored
    c.send("B7\tuser1234@example.org").await;
    c.send("U7\tpriv/123/devicetoken").await;
    c.send("C7").await;
    assert_eq!(c.read_line().await, "O7");
    // bad tokens get a clear error and change nothing
    let huge = "x".repeat(5000);
    for (token, why) in [
        ("a\x01nb", "white space or a control character"),
        ("a b", "white space"),
        ("", "empty device token"),
        (huge.as_str(), "longer than the limit of 4096"),
    ] {
        let reply = c.set_token(USER, token).await;
        assert!(reply.starts_with('F') && reply.contains(why), "{reply}");
    }
    // invalid users
    let reply = c.set_token("../etc@example.org", "1111").await;
    assert!(
        reply.starts_with('F') && reply.contains("invalid user"),
        "{reply}"
    );
    assert!(c.get_tokens("a@b@c").await.starts_with("Finvalid user"));
    assert!(
        c.set_token("nobody12@example.org", "1111")
            .await
            .contains("no mailbox")
    );
    assert_eq!(c.get_tokens(USER).await, "O");
    // an increment fails; a commit without a transaction fails
    c.send("B9\tuser1234@example.org").await;
    c.send("A9\tpriv/1/devicetoken\t1").await;
    c.send("C9").await;
    assert!(c.read_line().await.starts_with("F9"));
    assert!(!h.mailboxes.join("..").join("etc@example.org").exists());
}

#[tokio::test]
async fn server_info_over_the_socket() {
    let gw = StandIn::http(always(200)).await;
    let mut h = Harness::new();
    h.start(&gw.url, fast_schedule()).await;
    let mut c = h.client().await;
    assert_eq!(
        c.lookup(&format!("{SERVER}irohrelay"), USER).await,
        "Ohttps://example.org"
    );
    assert_eq!(
        c.lookup(&format!("{SERVER}maxsmtprecipients"), USER).await,
        "O1000"
    );
    let shipped = include_str!("../appversions.json").trim_end();
    assert_eq!(
        c.lookup(&format!("{SERVER}appversions"), USER).await,
        format!("O{shipped}")
    );
    // no TURN server running
    assert_eq!(c.lookup(&format!("{SERVER}turn"), USER).await, "N");
    let turn = tokio::net::UnixListener::bind(h.dir.path().join("turn.socket")).unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = turn.accept().await {
            let _ = s.write_all(b"1700000000:user:secret\n").await;
        }
    });
    assert_eq!(
        c.lookup(&format!("{SERVER}turn"), USER).await,
        "Oexample.org:3478:1700000000:user:secret"
    );
}
