# shellcheck shell=bash
# answers PORT: true when something answers HTTP on 127.0.0.1:PORT/isAlive/
# (any status: with TLS on, a plain request gets 400 HttpsRequired, which
# proves the server is up as well as a 200 would). Sourced by bin/dss and
# bin/eventserver.
#
# The connection's errors stay out of the caller's stderr without
# redirecting it for good (`exec 3<>... 2>/dev/null` would), and the request
# is written in a subshell that ignores SIGPIPE: a server closing the
# connection early must make this probe fail, not kill the caller silently.
answers() {
    local line=""
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    (trap '' PIPE; printf 'GET /isAlive/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3) 2>/dev/null || true
    read -r -t 5 line <&3 || true
    exec 3>&- 3<&-
    [[ "$line" == HTTP/* ]]
}
