# shellcheck shell=bash disable=SC2034
# chatmail-milter: only OpenPGP-encrypted mail in and out. Postfix's submission/smtps services
# use the outbound listener, port 25 the inbound one (master.cf: -o smtpd_milters=...).
# Sourced by packaging/relay (see sidecars/README.md).
name=milter
# vmail: the milter reads each recipient's enforceE2EEincoming flag in mailboxes_dir.
user=vmail
umask=0022
runtime_dirs=()
command=(chatmail-milter --config "$CHATMAIL_INI")

MILTER_OUTBOUND=$(ini_get milter_outbound unix:/var/spool/postfix/chatmail/outbound.sock)
MILTER_INBOUND=$(ini_get milter_inbound unix:/var/spool/postfix/chatmail/inbound.sock)
sockets=()
for _addr in "$MILTER_OUTBOUND" "$MILTER_INBOUND"; do
    [[ $_addr == unix:* ]] && sockets+=("${_addr#unix:}")
done
unset _addr

# The socket directory: the milter (vmail) binds there, Postfix (smtpd and cleanup, user
# postfix) connects; the sockets themselves are mode 0666.
prepare() {
    local sock
    for sock in "${sockets[@]}"; do
        install -d -o vmail -g vmail -m 0755 "$(dirname "$sock")"
    done
}

# smtpd_milters value for Postfix: a socket under the queue directory is given relative to
# it (unix:chatmail/outbound.sock), which works with and without Postfix's chroot.
postfix_milter_addr() {
    local addr=$1
    if [[ $addr == unix:/var/spool/postfix/* ]]; then
        printf 'unix:%s' "${addr#unix:/var/spool/postfix/}"
    else
        printf '%s' "$addr"
    fi
}

template_values() {
    TPL[MILTER_OUTBOUND]=$(postfix_milter_addr "$MILTER_OUTBOUND")
    TPL[MILTER_INBOUND]=$(postfix_milter_addr "$MILTER_INBOUND")
}
