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

MILTER_OUTBOUND=$(ini_get milter_outbound unix:/var/spool/postfix/chatmail/outbound.sock)
MILTER_INBOUND=$(ini_get milter_inbound unix:/var/spool/postfix/chatmail/inbound.sock)
MILTER_INTERNAL=$(ini_get milter_internal unix:/var/spool/postfix/chatmail/internal.sock)
sockets=()
for _addr in "$MILTER_OUTBOUND" "$MILTER_INBOUND" "$MILTER_INTERNAL"; do
    [[ $_addr == unix:* ]] && sockets+=("${_addr#unix:}")
done
unset _addr

# The socket directory: the milter (vmail) binds there, Postfix (smtpd and cleanup, user
# postfix) connects. It is setgid, group postfix: the sockets (mode 0660) get that group, so
# Postfix connects and nobody else does, and the milter needs no membership in Postfix's
# group. (An existing directory of an older version, vmail:vmail 0755, is changed.)
prepare() {
    local sock dir
    for sock in "${sockets[@]}"; do
        dir=$(dirname "$sock")
        # Never re-own a directory of someone else's (e.g. /run for unix:/run/x.sock).
        if [[ -e $dir && $(stat -c %U "$dir") != vmail ]]; then
            die "milter socket $sock: $dir belongs to $(stat -c %U "$dir"), not vmail; give the milter's sockets a directory of their own"
        fi
        install -d -o vmail -g postfix -m 2750 "$dir"
    done
    milter_dkim_key
}

# DKIM (relays with a domain name; an IP-only relay neither signs nor verifies): the signing
# key is created when missing (RSA 2048), and the DNS record that publishes it is written next
# to chatmail.ini (dkim.txt) for the operator. The key is root:chatmail-dkim 0640 in a
# directory root:chatmail-dkim 0750: readable by the milter (supplementary group
# chatmail-dkim), not by Dovecot's mail processes, which also run as vmail. A key of an older
# version (group vmail) is moved to group chatmail-dkim.
milter_dkim_key() {
    local domain key selector record txt
    domain=$(ini_get mail_domain "")
    is_ipv4 "$domain" && return 0
    key=$(ini_get dkim_key /etc/dkimkeys/opendkim.private)
    selector=$(ini_get dkim_selector opendkim)
    if [[ ! -e $key ]]; then
        install -d -o root -g chatmail-dkim -m 0750 "$(dirname "$key")"
        (umask 0027 && openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
            -out "$key.tmp") || die "cannot create the DKIM key $key"
        chown root:chatmail-dkim "$key.tmp"
        chmod 0640 "$key.tmp"
        mv "$key.tmp" "$key"
        log "created DKIM key $key (selector $selector)"
    fi
    dkim_key_from_vmail_group "$(dirname "$key")" 0750
    dkim_key_from_vmail_group "$key" 0640
    record=$(openssl pkey -in "$key" -pubout -outform DER | base64 -w0) ||
        die "cannot read the DKIM key $key"
    txt="$(dirname "$CHATMAIL_INI")/dkim.txt"
    printf '%s._domainkey.%s. TXT "v=DKIM1; k=rsa; p=%s"\n' "$selector" "$domain" "$record" \
        >"$txt.tmp" && mv "$txt.tmp" "$txt"
    log "DKIM DNS record for $domain: $txt"
}

# dkim_key_from_vmail_group PATH MODE: PATH of group vmail (as older versions made the key and
# its directory) goes to group chatmail-dkim with MODE. Anything else is left alone.
dkim_key_from_vmail_group() {
    [[ $(stat -c %G "$1") == vmail ]] || return 0
    chgrp chatmail-dkim "$1"
    chmod "$2" "$1"
    log "$1: group vmail -> chatmail-dkim (mode $2)"
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
    # Mail Postfix makes itself goes to the internal listener on every relay: cleartext that
    # sendmail(1) on this machine would inject is refused, bounces pass (and get DKIM-signed
    # on relays with a domain; an IP-only relay signs nothing).
    TPL[NON_SMTPD_MILTERS]=$(postfix_milter_addr "$MILTER_INTERNAL")
}
