# shellcheck shell=bash disable=SC2034
# coturn (Debian's turnserver): TURN for Delta Chat's calls, on 127.0.0.1:3478 (UDP and TCP),
# with the configuration `chatmail-relay setup --local` renders (/etc/chatmail/turnserver.conf:
# the TURN secret, loopback only, no relaying to private or loopback peers). It logs to
# standard output, i.e. its log file. Sourced by packaging/relay (see sidecars/README.md).
name=turn
user=turnserver
umask=0077
runtime_dirs=()
sockets=()
command=(/usr/bin/turnserver -c /etc/chatmail/turnserver.conf --pidfile=)
# Not with an empty turn_secret_file (TURN is the operator's then).
[[ -n $(config_get turn_secret_file) ]] || enabled=0
