# shellcheck shell=bash disable=SC2034
# chatmail-pushnotify: the IMAP METADATA dict (device tokens, server info) and the push
# notifier (gateway: notification_url in chatmail.ini). Sourced by packaging/relay (see
# sidecars/README.md).
name=pushnotify
user=vmail
# chatmail-turn: the TURN secret it computes credentials from (no other process of vmail may
# read it).
groups=(chatmail-turn)
umask=0077
runtime_dirs=(/run/chatmail-metadata)
sockets=(/run/chatmail-metadata/metadata.socket)
command=(chatmail-pushnotify --config "$CHATMAIL_INI" --socket /run/chatmail-metadata/metadata.socket)

# Installs the appversions JSON that is served to clients (chatmail.ini appversions_file).
prepare() {
    install -D -m 0644 "$REPO/pushnotify/appversions.json" \
        "$(config_get appversions_file)"
}
