# shellcheck shell=bash
# scripts/lib/errtrap.sh — no silent exits: under `set -e`, say which command failed,
# with its exit status and where (script:line, and the function chain). Sourced by every
# script right after `set -euo pipefail`. Issue #11: a failed `apt-cache` inside a command
# substitution ended the VM step with nothing but "FAIL after 0s".
set -o errtrace   # the trap also fires inside functions and command substitutions

ERRTRAP_SUBSHELL=$BASH_SUBSHELL

errtrap_report() {
    local rc=$1 cmd=$2 i where=""
    # A failure inside $(…) or ( … ) is reported once, by the shell that ran it.
    ((BASH_SUBSHELL == ERRTRAP_SUBSHELL)) || return 0
    # Frame 0 is this function; frame 1 is where the failing command ran.
    for ((i = 1; i < ${#FUNCNAME[@]}; i++)); do
        where+="${where:+ <- }${BASH_SOURCE[i]##*/}:${BASH_LINENO[i - 1]}"
        [[ ${FUNCNAME[i]} != main && ${FUNCNAME[i]} != source ]] && where+=" (${FUNCNAME[i]})"
    done
    printf '%s: command failed (exit %d) at %s: %s\n' "${0##*/}" "$rc" "$where" "$cmd" >&2
}
trap 'errtrap_report $? "$BASH_COMMAND"' ERR
