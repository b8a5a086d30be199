# Shared by the shell stages of the test command (tshark.sh, prometheus.sh):
# the pass/fail counters and their summary line, a work directory kept when
# something failed, and installing a Debian package when it is missing.
#
# Source it after setting STAGE (the name the summary line starts with) and
# WORK (the work directory).

PASS=0
FAIL=0

ok()   { PASS=$((PASS + 1)); echo "ok   $1"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL $1"; [ $# -gt 1 ] && printf '     %s\n' "$2"; }
die()  { echo "$STAGE: setup failed: $1" >&2; FAIL=$((FAIL + 1)); echo "$STAGE: $PASS passed, $FAIL failed"; exit 1; }

# finish PID...: stops those processes, then removes $WORK unless KEEP=1 or
# a check failed (then it says where it is).
finish() {
    local pid
    for pid in "$@"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    if [ "${KEEP:-0}" = 1 ] || [ "$FAIL" -gt 0 ]; then
        echo "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}

# apt_need PACKAGE: installs it from Debian's packages (as root), running
# `apt-get update` only when the plain install fails (a fresh machine's
# lists may be missing or old).
apt_need() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "$1" >"$WORK/apt.log" 2>&1 ||
        { apt-get update -q >>"$WORK/apt.log" 2>&1 && apt-get install -y -q "$1" >>"$WORK/apt.log" 2>&1; } ||
        die "apt-get install $1 failed (see $WORK/apt.log)"
}
