# shellcheck shell=bash disable=SC2034
# chatmail-iroh-relay: the iroh relay (realtime apps in Delta Chat chats) on 127.0.0.1:3340,
# behind nginx's /relay, /ping and /generate_204 on port 443. It keeps no files: it runs as
# www-data, nginx's worker user. Sourced by packaging/relay (see sidecars/README.md).
name=iroh
user=www-data
umask=0077
runtime_dirs=()
sockets=()
command=(chatmail-iroh-relay --listen 127.0.0.1:3340)
