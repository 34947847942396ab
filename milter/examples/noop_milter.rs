//! A milter that negotiates what chatmail-milter negotiates (the same events, no-reply
//! options and macros) and accepts every message without looking at it: the cost of the
//! milter protocol itself, for `milter/bench/postfix_throughput.py`.
//!
//! `cargo run --release -p chatmail-milter --example noop_milter -- SOCKET`

use std::os::unix::fs::PermissionsExt;

use indymilter::{Actions, Callbacks, ContextActions, MacroStage, ProtoOpts, Status};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: noop_milter SOCKET [--insert-header BYTES]");
        std::process::exit(2);
    };
    // With --insert-header, every message gets a constant `DKIM-Signature` field of about
    // BYTES on top, as chatmail-milter's signature: what inserting a header costs Postfix,
    // without any signing.
    let insert: Option<String> = match (args.next().as_deref(), args.next()) {
        (Some("--insert-header"), Some(n)) => {
            let n: usize = n.parse().expect("--insert-header BYTES");
            let b = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/".repeat(n / 38 + 1);
            let mut value = String::from("v=1; a=rsa-sha256; s=noop; d=noop.invalid; b=");
            for (i, chunk) in b.as_bytes()[..n].chunks(72).enumerate() {
                if i > 0 {
                    value.push_str("\n\t");
                }
                value.push_str(std::str::from_utf8(chunk).expect("ascii"));
            }
            Some(value)
        }
        (None, _) => None,
        _ => {
            eprintln!("usage: noop_milter SOCKET [--insert-header BYTES]");
            std::process::exit(2);
        }
    };
    let insert = std::sync::Arc::new(insert);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        // As chatmail-milter's: Postfix's smtpd and cleanup connect through the group of the
        // socket directory (setgid, group postfix)
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).expect("chmod");
        let insert_negotiate = insert.clone();
        let callbacks: Callbacks<()> = Callbacks::new()
            .on_negotiate(move |cx, _actions, mta_opts| {
                let insert_negotiate = insert_negotiate.clone();
                Box::pin(async move {
                    cx.requested_actions = if insert_negotiate.is_some() {
                        Actions::ADD_HEADER
                    } else {
                        Actions::empty()
                    };
                    // Recipients are answered one by one, as chatmail-milter answers them.
                    for opt in [ProtoOpts::NOREPLY_HEADER, ProtoOpts::NOREPLY_BODY] {
                        if mta_opts.contains(opt) {
                            cx.requested_opts |= opt;
                        }
                    }
                    cx.requested_macros
                        .insert(MacroStage::Mail, c"{auth_authen}".to_owned());
                    cx.requested_macros
                        .insert(MacroStage::Rcpt, c"{rcpt_addr}".to_owned());
                    cx.requested_macros.insert(MacroStage::Eom, c"i".to_owned());
                    Status::Continue
                })
            })
            .on_mail(|_, _| Box::pin(async { Status::Continue }))
            .on_rcpt(|_, _| Box::pin(async { Status::Continue }))
            .on_header(|_, _, _| Box::pin(async { Status::Noreply }))
            .on_body(|_, _| Box::pin(async { Status::Noreply }))
            .on_eom(move |cx| {
                let insert = insert.clone();
                Box::pin(async move {
                    if let Some(value) = insert.as_deref() {
                        let _ = cx
                            .actions
                            .insert_header(0, c"DKIM-Signature".to_owned(), value)
                            .await;
                    }
                    Status::Accept
                })
            });
        indymilter::run(
            listener,
            callbacks,
            Default::default(),
            std::future::pending::<()>(),
        )
        .await
        .expect("milter");
    });
}
