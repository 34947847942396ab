# shellcheck shell=bash disable=SC2034
# chatmail-web: the web backend behind nginx (invite page, /new, /mxdeliv). Sourced by
# packaging/relay (see sidecars/README.md). It runs as www-data, nginx's worker user, so that
# its socket (0660) admits nginx and nobody else.
name=web
user=www-data
umask=0007
runtime_dirs=(/run/chatmail-web)
sockets=(/run/chatmail-web/web.sock)
command=(chatmail-web --config "$CHATMAIL_INI" --socket /run/chatmail-web/web.sock)
