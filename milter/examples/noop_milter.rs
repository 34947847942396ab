//! A milter that negotiates what chatmail-milter negotiates (the same events, no-reply
//! options and macros) and accepts every message without looking at it: the cost of the
//! milter protocol itself, for `milter/bench/postfix_throughput.py`.
//!
//! `cargo run --release -p chatmail-milter --example noop_milter -- SOCKET`

use std::os::unix::fs::PermissionsExt;

use indymilter::{Actions, Callbacks, MacroStage, ProtoOpts, Status};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: noop_milter SOCKET");
        std::process::exit(2);
    };
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
        let callbacks: Callbacks<()> = Callbacks::new()
            .on_negotiate(|cx, _actions, mta_opts| {
                Box::pin(async move {
                    cx.requested_actions = Actions::empty();
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
            .on_eom(|_| Box::pin(async { Status::Accept }));
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
