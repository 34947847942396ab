//! Glue between indymilter and [`Session`]: every event goes to the connection's session;
//! a missing session or a reply that cannot be sent becomes a tempfail, never an accept.

use std::ffi::{CStr, CString};
use std::sync::Arc;

use indymilter::{
    Actions, Callbacks, Context, ContextActions, EomContext, MacroStage, NegotiateContext,
    ProtoOpts, SetErrorReply, Status,
};

use crate::policy::Direction;
use crate::policy::verdict::Refused;
use crate::session::{Session, Shared, Step};

/// Per-connection data: the session plus what was negotiated.
pub struct Connection {
    session: Session,
    noreply_rcpt: bool,
    noreply_header: bool,
    noreply_body: bool,
}

macro_rules! connection {
    ($cx:expr) => {
        match $cx.data.as_mut() {
            Some(conn) => conn,
            None => {
                tracing::error!("milter event before negotiation; tempfailing");
                return Status::Tempfail;
            }
        }
    };
}

/// The callbacks of one listener; `direction` is that listener's policy.
pub fn make_callbacks(shared: Arc<Shared>, direction: Direction) -> Callbacks<Connection> {
    Callbacks::new()
        .on_negotiate(move |cx, _actions, opts| {
            Box::pin(negotiate(cx, opts, shared.clone(), direction))
        })
        .on_mail(|cx, args| Box::pin(mail(cx, args)))
        .on_rcpt(|cx, args| Box::pin(rcpt(cx, args)))
        .on_header(|cx, name, value| Box::pin(header(cx, name, value)))
        .on_body(|cx, chunk| Box::pin(body(cx, chunk)))
        .on_eom(|cx| Box::pin(eom(cx)))
        .on_abort(|cx| Box::pin(abort(cx)))
        .on_close(|cx| Box::pin(close(cx)))
}

async fn negotiate(
    cx: &mut NegotiateContext<Connection>,
    mta_opts: ProtoOpts,
    shared: Arc<Shared>,
    direction: Direction,
) -> Status {
    // The only change we make: a DKIM-Signature header on signed outbound and internal mail.
    cx.requested_actions = if direction != Direction::Inbound && shared.dkim.is_some() {
        Actions::ADD_HEADER
    } else {
        Actions::empty()
    };
    // Headers and body chunks need no answer: their verdict is given at end of message.
    // Recipients are answered one by one (an unknown one is refused in the SMTP dialogue),
    // except on the internal listener, whose recipients must never be refused.
    let noreply = |opt: ProtoOpts| mta_opts.contains(opt);
    let (noreply_rcpt, noreply_header, noreply_body) = (
        direction == Direction::Internal && noreply(ProtoOpts::NOREPLY_RCPT),
        noreply(ProtoOpts::NOREPLY_HEADER),
        noreply(ProtoOpts::NOREPLY_BODY),
    );
    for (wanted, opt) in [
        (noreply_rcpt, ProtoOpts::NOREPLY_RCPT),
        (noreply_header, ProtoOpts::NOREPLY_HEADER),
        (noreply_body, ProtoOpts::NOREPLY_BODY),
    ] {
        if wanted {
            cx.requested_opts |= opt;
        }
    }
    cx.requested_macros
        .insert(MacroStage::Mail, c"{auth_authen}".to_owned());
    // The address Postfix resolved the recipient to: what it will deliver to.
    cx.requested_macros
        .insert(MacroStage::Rcpt, c"{rcpt_addr}".to_owned());
    cx.requested_macros.insert(MacroStage::Eom, c"i".to_owned());
    cx.data = Some(Connection {
        session: Session::new(shared, direction),
        noreply_rcpt,
        noreply_header,
        noreply_body,
    });
    Status::Continue
}

fn first_arg(args: &[CString]) -> String {
    args.first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn macro_string(cx: &Context<Connection>, name: &CStr) -> Option<String> {
    cx.macros
        .get(name)
        .map(|v| v.to_string_lossy().into_owned())
}

async fn mail(cx: &mut Context<Connection>, args: Vec<CString>) -> Status {
    let auth = macro_string(cx, c"{auth_authen}");
    let conn = connection!(cx);
    let step = conn.session.mail(&first_arg(&args), auth.as_deref());
    apply(&mut cx.reply, step)
}

async fn rcpt(cx: &mut Context<Connection>, args: Vec<CString>) -> Status {
    let resolved = macro_string(cx, c"{rcpt_addr}");
    let conn = connection!(cx);
    let arg = first_arg(&args);
    if conn.noreply_rcpt {
        conn.session.rcpt_noreply(&arg, resolved.as_deref());
        return Status::Noreply;
    }
    let step = conn.session.rcpt(&arg, resolved.as_deref());
    apply(&mut cx.reply, step)
}

async fn header(cx: &mut Context<Connection>, name: CString, value: CString) -> Status {
    let conn = connection!(cx);
    let step = conn.session.header(name.as_bytes(), value.as_bytes());
    if conn.noreply_header {
        // A failure here shows again at end of message.
        return Status::Noreply;
    }
    apply(&mut cx.reply, step)
}

async fn body(cx: &mut Context<Connection>, chunk: bytes::Bytes) -> Status {
    let conn = connection!(cx);
    let step = conn.session.body(&chunk);
    if conn.noreply_body {
        return Status::Noreply;
    }
    apply(&mut cx.reply, step)
}

async fn eom(cx: &mut EomContext<Connection>) -> Status {
    let queue_id = cx
        .macros
        .get(c"i")
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_else(|| "NOQUEUE".into());
    let conn = match cx.data.as_mut() {
        Some(conn) => conn,
        None => {
            tracing::error!(queue_id, "end of message before negotiation; tempfailing");
            return Status::Tempfail;
        }
    };
    let step = conn.session.end_of_message(&queue_id).await;
    if let Step::AcceptSigned(value) = step {
        return match cx
            .actions
            .insert_header(0, c"DKIM-Signature".to_owned(), value.as_str())
            .await
        {
            Ok(()) => Status::Accept,
            Err(e) => {
                // Never an unsigned accept.
                tracing::error!(queue_id, error = %e, "cannot add the DKIM-Signature header; tempfailing");
                apply(&mut cx.reply, Step::Refuse(Refused::Internal.reply()))
            }
        };
    }
    apply(&mut cx.reply, step)
}

async fn abort(cx: &mut Context<Connection>) -> Status {
    if let Some(conn) = cx.data.as_mut() {
        conn.session.abort();
    }
    Status::Continue
}

async fn close(cx: &mut Context<Connection>) -> Status {
    if let Some(conn) = cx.data.as_mut() {
        conn.session.abort();
    }
    Status::Continue
}

/// Turns a step into a status, setting the SMTP reply for refusals.
fn apply(reply: &mut impl SetErrorReply, step: Step) -> Status {
    match step {
        Step::Continue => Status::Continue,
        Step::Accept => Status::Accept,
        // Only at end of message, where `eom` adds the header first.
        Step::AcceptSigned(_) => Status::Accept,
        Step::Refuse(r) => {
            let status = if r.is_temporary() {
                Status::Tempfail
            } else {
                Status::Reject
            };
            if let Err(e) = reply.set_error_reply(r.code, Some(r.xcode), [r.text.as_str()]) {
                tracing::error!(error = %e, reply = %r.line(), "cannot set the SMTP reply");
                return Status::Tempfail;
            }
            status
        }
    }
}
