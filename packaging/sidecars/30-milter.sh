# shellcheck shell=bash disable=SC2034
# chatmail-milter: only OpenPGP-encrypted mail in and out. Postfix's submission/smtps services
# use the outbound listener, port 25 the inbound one (master.cf: -o smtpd_milters=...), mail
# Postfix makes itself (bounces, sendmail) the internal one (main.cf: non_smtpd_milters).
# Sourced by packaging/relay (see sidecars/README.md).
name=milter
# vmail: the milter reads each recipient's enforceE2EEincoming flag in mailboxes_dir.
user=vmail
# chatmail-dkim: the milter, and no other process of vmail, may read the DKIM key.
groups=(chatmail-dkim)
umask=0022
runtime_dirs=()
command=(chatmail-milter --config "$CHATMAIL_INI")

sockets=()
for _key in milter_outbound milter_inbound milter_internal; do
    _addr=$(config_get "$_key")
    [[ $_addr == unix:* ]] && sockets+=("${_addr#unix:}")
done
unset _key _addr

# `chatmail-relay setup` makes the socket directory below Postfix's queue directory
# (/var/spool/postfix/chatmail: vmail, setgid group postfix, 2750) and the DKIM key; a socket
# elsewhere needs a directory the operator made.
prepare() {
    local sock
    for sock in "${sockets[@]}"; do
        [[ -d $(dirname "$sock") ]] || die "milter socket $sock: no directory $(dirname "$sock")"
    done
}
