#!/usr/bin/env bash
# scripts/browser-up.sh: the headless browser for the tests of `dagrun serve`'s page
# (tests/cli/browser.rs): Debian's chromium, chromium-driver (chromedriver, W3C WebDriver)
# and fonts-dejavu-core (readable text in screenshots). `.ci/run` calls it; the tests skip
# without these packages, and fail when CI is set.
#
# Idempotent: with everything installed it only checks and exits (no apt-get update).
# Installing needs root. WebGL needs no GPU and no display: the tests run chromium with
# --headless=new and SwiftShader (shipped in the chromium package).
set -euo pipefail

PACKAGES=(chromium chromium-driver fonts-dejavu-core)
LOCK_WAIT=${DAGRUN_APT_LOCK_WAIT:-600}   # seconds to wait for another apt/dpkg to finish

log() { printf 'browser-up: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done

# apt_get ARGS...: apt-get, waiting up to $LOCK_WAIT s while another apt-get or dpkg holds
# its locks (DPkg::Lock::Timeout covers dpkg's lock; the lists lock is retried here).
apt_get() {
    local rc out deadline=$((SECONDS + LOCK_WAIT))
    out=$(mktemp)
    while :; do
        rc=0
        apt-get -q -o "DPkg::Lock::Timeout=$LOCK_WAIT" "$@" 2>&1 | tee "$out" >&2 || rc=${PIPESTATUS[0]}
        if [ "$rc" -ne 0 ] && grep -q 'Could not get lock' "$out" && [ $SECONDS -lt $deadline ]; then
            log "another apt-get or dpkg holds the lock: waiting"
            sleep 5
            continue
        fi
        rm -f "$out"
        return "$rc"
    done
}

if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get: install Debian's ${PACKAGES[*]} by hand"
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root to install them (apt-get install ${PACKAGES[*]})"
    export DEBIAN_FRONTEND=noninteractive
    log "missing ${missing[*]}: apt-get update"
    apt_get update || die "apt-get update failed"
    log "apt-get install -y --no-install-recommends ${missing[*]}"
    apt_get install -y --no-install-recommends "${missing[@]}" || die "apt-get install ${missing[*]} failed"
    for p in "${missing[@]}"; do
        installed "$p" || die "$p is still not installed after apt-get install"
    done
fi

# Both programs run: chromedriver, and chromium's real binary (the tests use it rather than
# Debian's /usr/bin/chromium wrapper script, which adds flags from /etc/chromium.d).
driver=$(command -v chromedriver || echo /usr/bin/chromedriver)
chromium=/usr/lib/chromium/chromium
[ -x "$chromium" ] || chromium=$(command -v chromium) || die "no chromium binary after installing chromium"
"$driver" --version >/dev/null 2>&1 || die "$driver --version fails"
"$chromium" --version >/dev/null 2>&1 || die "$chromium --version fails"
log "ready: $("$driver" --version | cut -d' ' -f1-2), $("$chromium" --version 2>/dev/null | cut -d' ' -f1-2), fonts-dejavu-core"
