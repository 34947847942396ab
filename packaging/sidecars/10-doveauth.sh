# shellcheck shell=bash disable=SC2034
# chatmail-doveauth: Dovecot's passdb/userdb dict (accounts created at first login) and its
# last-login dict, both on one socket. Sourced by packaging/relay (see sidecars/README.md).
name=doveauth
user=vmail
umask=0077
runtime_dirs=(/run/doveauth)
sockets=(/run/doveauth/doveauth.socket)
command=(chatmail-doveauth --config "$CHATMAIL_INI" --socket /run/doveauth/doveauth.socket)
