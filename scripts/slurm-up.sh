#!/usr/bin/env bash
# scripts/slurm-up.sh: a real one-node SLURM cluster on localhost for dagrun's integration
# tests, from Debian's packages (slurm-wlm, munge). Needs root; no systemd needed.
#
#   scripts/slurm-up.sh          start (idempotent: an up and answering cluster is left alone)
#   scripts/slurm-up.sh stop     cancel jobs, stop slurmd/slurmctld (and munged if we started it)
#   scripts/slurm-up.sh status   print daemons, node state and queue; exit 0 iff the cluster answers
#
# Config goes to /etc/slurm/slurm.conf (so sbatch/squeue/... need no SLURM_CONF); state,
# spool, pid files and logs go to $DAGRUN_SLURM_DIR (default /var/tmp/dagrun-slurm).
# No accounting (no slurmdbd, sacct does not work), no cgroups (proctrack/linuxproc,
# task/none), select/cons_tres with CR_CPU_Memory so several 1-CPU jobs run at once.
# Finished jobs stay visible in `squeue --states=all` / `scontrol show job` for MinJobAge=300 s.
set -euo pipefail

export PATH="$PATH:/usr/sbin:/sbin"
DIR=${DAGRUN_SLURM_DIR:-/var/tmp/dagrun-slurm}
CONF=/etc/slurm/slurm.conf
MARK='# written by dagrun scripts/slurm-up.sh'
TIMEOUT=${DAGRUN_SLURM_TIMEOUT:-60}   # seconds for each wait (controller, node, smoke job)
MUNGE_KEY=/etc/munge/munge.key

log() { printf 'slurm-up: %s\n' "$*" >&2; }

# die MESSAGE [LOGFILE...]: print MESSAGE and the tail of each log, exit 1.
die() {
    local msg=$1; shift
    log "ERROR: $msg"
    local f
    for f in "$@"; do
        if [ -s "$f" ]; then
            printf -- '----- tail of %s -----\n' "$f" >&2
            tail -n 25 "$f" >&2
        fi
    done
    exit 1
}

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root (writes $CONF, starts daemons)"; }

ensure_packages() {
    local c missing=()
    for c in slurmctld slurmd sbatch srun sinfo squeue scontrol scancel munged munge unmunge; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "missing ${missing[*]}: installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q slurm-wlm munge >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update -q >&2 || die "apt-get update failed"
        apt-get install -y -q slurm-wlm munge >&2 || die "apt-get install slurm-wlm munge failed"
    fi
    for c in slurmctld slurmd sbatch munged; do
        command -v "$c" >/dev/null 2>&1 || die "$c still missing after installing slurm-wlm munge"
    done
}

conf_is_ours() { [ -f "$CONF" ] && grep -qxF "$MARK" "$CONF"; }

# conf_value KEY: value of KEY=... in the installed slurm.conf (our format: no spaces around =).
conf_value() { [ -f "$CONF" ] && sed -n "s/^$1=//p" "$CONF" | head -n 1; }

# pid_alive PIDFILE NAME: prints the pid if PIDFILE names a live process called NAME.
pid_alive() {
    local pf=$1 name=$2 pid
    [ -n "$pf" ] && [ -f "$pf" ] || return 1
    pid=$(tr -dc '0-9' <"$pf")
    [ -n "$pid" ] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "$name" ] || return 1
    case "$(ps -o stat= -p "$pid" 2>/dev/null)" in Z*|"") return 1 ;; esac   # zombie: dead
    echo "$pid"
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

# ---------------------------------------------------------------- config

gen_conf() {
    local host cpus mem line boards sockets cores threads defmem
    host=$(hostname -s)
    [ -n "$host" ] || die "hostname -s is empty"
    line=$(slurmd -C 2>/dev/null | head -n 1 || true)
    cpus=$(sed -n 's/.*[[:space:]]CPUs=\([0-9]*\).*/\1/p' <<<"$line")
    boards=$(sed -n 's/.*Boards=\([0-9]*\).*/\1/p' <<<"$line")
    sockets=$(sed -n 's/.*SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$line")
    cores=$(sed -n 's/.*CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$line")
    threads=$(sed -n 's/.*ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$line")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$line")
    [ -n "$cpus" ] || cpus=$(nproc)
    [ -n "$mem" ] || mem=$(free -m | awk '/^Mem:/ {print $2}')
    # A little below what slurmd measures, rounded, so the node never drains for
    # "Low RealMemory" and small fluctuations do not change the config.
    if [ "$mem" -gt 1024 ]; then mem=$(( mem * 95 / 100 / 256 * 256 )); fi
    defmem=$(( mem / cpus )); [ "$defmem" -gt 1024 ] && defmem=1024
    local topo="CPUs=$cpus"
    if [ -n "$boards" ] && [ -n "$sockets" ] && [ -n "$cores" ] && [ -n "$threads" ]; then
        topo="CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads"
    fi
    cat <<EOF
$MARK
# One-node localhost cluster for dagrun's integration tests. Regenerated (and the state
# in $DIR wiped) whenever its content would change. Do not edit by hand.
ClusterName=dagrun
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5,batch_sched_delay=0
DependencyParameters=kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$defmem
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MessageTimeout=10
Waittime=0
KillWait=5
CompleteWait=0
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 $topo RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

# ---------------------------------------------------------------- munge

ensure_munge() {
    getent passwd munge >/dev/null || die "no munge user (is the munge package installed?)"
    if [ ! -s "$MUNGE_KEY" ]; then
        log "creating $MUNGE_KEY"
        mkdir -p /etc/munge
        if ! mungekey --create --keyfile="$MUNGE_KEY" 2>/dev/null; then
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
        fi
        chown munge:munge "$MUNGE_KEY"
        chmod 0400 "$MUNGE_KEY"
    fi
    chown munge:munge /etc/munge "$MUNGE_KEY"
    chmod 0700 /etc/munge
    # munged refuses a key readable by group/other.
    if [ -n "$(find "$MUNGE_KEY" -perm /077 2>/dev/null)" ]; then chmod 0400 "$MUNGE_KEY"; fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0711 /var/lib/munge
    install -d -o munge -g munge -m 0700 /var/log/munge

    munge_ok && return 0
    if pgrep -x munged >/dev/null; then
        local mine
        if mine=$(pid_alive "$DIR/run/munged.pid" munged); then
            log "munged ($mine, started by us) does not answer; restarting it"
            kill "$mine" 2>/dev/null || true; sleep 1
        else
            die "a munged is running but 'munge -n | unmunge' fails (not ours; not touching it)" \
                /var/log/munge/munged.log
        fi
    fi
    log "starting munged"
    # 9>&-: daemons must not inherit the lock on $DIR/lock.
    if ! runuser -u munge -- /usr/sbin/munged </dev/null >>"$DIR/log/munged.stderr" 2>&1 9>&-; then
        # A stale socket/lock from a killed munged makes it refuse to start; --force overrides.
        runuser -u munge -- /usr/sbin/munged --force </dev/null >>"$DIR/log/munged.stderr" 2>&1 9>&- ||
            /usr/sbin/munged --force </dev/null >>"$DIR/log/munged.stderr" 2>&1 9>&- ||
            die "munged failed to start" "$DIR/log/munged.stderr" /var/log/munge/munged.log
    fi
    local i
    for i in $(seq 1 50); do munge_ok && break; sleep 0.2; done
    munge_ok || die "munged started but 'munge -n | unmunge' fails" \
        "$DIR/log/munged.stderr" /var/log/munge/munged.log
    if [ -f /run/munge/munged.pid ]; then cp /run/munge/munged.pid "$DIR/run/munged.pid"
    else pgrep -x -n munged >"$DIR/run/munged.pid" || true; fi
    log "munged up (pid $(cat "$DIR/run/munged.pid" 2>/dev/null))"
}

# ---------------------------------------------------------------- slurm daemons

# Prints the node's state (idle, mixed, allocated, down, drained, ... plus * ~ # etc. suffix).
node_state() { timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n 1; }

ctld_up() { timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }

# cluster_answers: controller up, node usable, and (when the node is idle) srun works.
cluster_answers() {
    ctld_up || return 1
    local st
    st=$(node_state) || return 1
    case "${st%%[!a-z]*}" in
        idle) timeout 30 srun -N1 -n1 true >/dev/null 2>&1 9>&- ;;   # idle: prove it runs jobs
        mixed|allocated|completing|planned) return 0 ;;         # busy: do not queue behind tests
        *) return 1 ;;
    esac
}

# kill_pidfile PIDFILE NAME: SIGTERM, wait up to 15 s, then SIGKILL.
kill_pidfile() {
    local pid i
    pid=$(pid_alive "$1" "$2") || return 0
    log "stopping $2 ($pid)"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then log "$2 ($pid) ignored SIGTERM; SIGKILL"; kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$1"
}

# Stop the slurm daemons of the installed (ours) config, cancelling its jobs first.
stop_slurm() {
    conf_is_ours || return 0
    local ctld_pf slurmd_pf i name
    ctld_pf=$(conf_value SlurmctldPidFile)
    slurmd_pf=$(conf_value SlurmdPidFile)
    if ctld_up; then
        timeout 10 scancel --partition=debug >/dev/null 2>&1 || true
        for i in $(seq 1 30); do
            [ -z "$(timeout 5 squeue -h -t RUNNING,COMPLETING,CONFIGURING -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    kill_pidfile "$slurmd_pf" slurmd
    kill_pidfile "$ctld_pf" slurmctld
    # Pid files lost (e.g. state dir removed by hand): the config is ours, so are its daemons.
    for name in slurmd slurmctld; do
        if pgrep -x "$name" >/dev/null; then
            log "stopping leftover $name (pkill -x)"
            pkill -x "$name" || true; sleep 1; pkill -9 -x "$name" 2>/dev/null || true
        fi
    done
    if pgrep -x slurmstepd >/dev/null; then
        log "killing leftover slurmstepd"; pkill -9 -x slurmstepd || true
    fi
}

stop_munge() {
    local pf=$DIR/run/munged.pid
    pid_alive "$pf" munged >/dev/null && kill_pidfile "$pf" munged
    rm -f "$pf"
}

start_daemon() {   # start_daemon NAME PIDFILE LOG
    local name=$1 pf=$2 lg=$3 i
    if pid_alive "$pf" "$name" >/dev/null; then return 0; fi
    if pgrep -x "$name" >/dev/null; then
        log "a $name without our pid file is running; stopping it"
        pkill -x "$name" || true; sleep 1; pkill -9 -x "$name" 2>/dev/null || true
    fi
    log "starting $name"
    # Daemonizes itself; stdio detached so a caller capturing our output is not held open.
    # -i: ignore unreadable state files instead of refusing to start.
    local args=()
    [ "$name" = slurmctld ] && args=(-i)
    # 9>&-: they must not inherit (and so hold forever) the lock on $DIR/lock.
    setsid "/usr/sbin/$name" "${args[@]}" </dev/null >>"$DIR/log/$name.stderr" 2>&1 9>&- ||
        die "$name failed to start" "$DIR/log/$name.stderr" "$lg"
    for i in $(seq 1 50); do pid_alive "$pf" "$name" >/dev/null && return 0; sleep 0.2; done
    die "$name exited right after starting" "$DIR/log/$name.stderr" "$lg"
}

# ---------------------------------------------------------------- commands

cmd_start() {
    need_root
    ensure_packages
    local t0=$SECONDS
    mkdir -p "$DIR/run" "$DIR/log"
    exec 9>"$DIR/lock"
    flock -w 300 9 || die "another slurm-up.sh holds $DIR/lock"

    local want sha
    want=$(gen_conf)
    sha=$(sha256sum <<<"$want" | cut -c1-64)

    if ! conf_is_ours && [ -f "$CONF" ]; then
        if cluster_answers; then
            log "a SLURM cluster with a foreign $CONF is up and answering; leaving it alone"
            exit 0
        fi
        log "backing up foreign $CONF to $CONF.dagrun-bak"
        cp -p "$CONF" "$CONF.dagrun-bak"
    fi
    if conf_is_ours && [ "$(cat "$CONF")" = "$want" ] &&
       [ "$(cat "$DIR/state/.dagrun-conf-sha256" 2>/dev/null)" = "$sha" ] && cluster_answers; then
        log "cluster already up ($(hostname -s), node $(node_state)); nothing to do"
        exit 0
    fi

    ensure_munge

    if ! { conf_is_ours && [ "$(cat "$CONF")" = "$want" ] &&
           [ "$(cat "$DIR/state/.dagrun-conf-sha256" 2>/dev/null)" = "$sha" ]; }; then
        log "writing $CONF and a fresh state dir under $DIR"
        stop_slurm
        rm -rf "$DIR/state" "$DIR/spool"
        mkdir -p /etc/slurm
        printf '%s\n' "$want" >"$CONF.tmp.$$"
        chmod 0644 "$CONF.tmp.$$"
        mv -f "$CONF.tmp.$$" "$CONF"
    fi
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log"
    printf '%s\n' "$sha" >"$DIR/state/.dagrun-conf-sha256"
    cp "$CONF" "$DIR/slurm.conf"

    start_daemon slurmctld "$DIR/run/slurmctld.pid" "$DIR/log/slurmctld.log"
    local i end=$((SECONDS + TIMEOUT))
    until ctld_up; do
        [ $SECONDS -lt $end ] || die "slurmctld not answering 'scontrol ping' after ${TIMEOUT}s" \
            "$DIR/log/slurmctld.log" "$DIR/log/slurmctld.stderr"
        pid_alive "$DIR/run/slurmctld.pid" slurmctld >/dev/null ||
            die "slurmctld died" "$DIR/log/slurmctld.log" "$DIR/log/slurmctld.stderr"
        sleep 0.5
    done
    start_daemon slurmd "$DIR/run/slurmd.pid" "$DIR/log/slurmd.log"

    local node st base last_resume=0
    node=$(hostname -s)
    end=$((SECONDS + TIMEOUT))
    while :; do
        st=$(node_state || true)
        base=${st%%[!a-z]*}
        case "$st" in
            idle|mixed|allocated|completing|planned) break ;;
        esac
        if [ "$base" = down ] || [ "$base" = drained ] || [ "$base" = draining ] || [ "$base" = fail ]; then
            if [ "$st" = "$base" ] && [ $((SECONDS - last_resume)) -ge 3 ]; then
                # Node responds but is down/drained (e.g. from a previous run): resume it.
                log "node $node is $st; resuming"
                scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
                last_resume=$SECONDS
            fi
        fi
        [ $SECONDS -lt $end ] || {
            timeout 5 scontrol show node "$node" >&2 || true
            die "node $node not usable after ${TIMEOUT}s (state: ${st:-none})" \
                "$DIR/log/slurmd.log" "$DIR/log/slurmctld.log"
        }
        pid_alive "$DIR/run/slurmd.pid" slurmd >/dev/null ||
            die "slurmd died" "$DIR/log/slurmd.log" "$DIR/log/slurmd.stderr"
        sleep 0.5
    done

    log "node $node is $st; smoke test (srun true, sbatch --wrap true)"
    timeout "$TIMEOUT" srun -N1 -n1 true >&2 9>&- ||
        die "smoke test 'srun -N1 -n1 true' failed" "$DIR/log/slurmd.log" "$DIR/log/slurmctld.log"
    # Batch path (what dagrun uses). Polls squeue: `sbatch --wait` polls only every ~10 s.
    local jid jst=""
    jid=$(timeout 10 sbatch --parsable --chdir="$DIR" --output=/dev/null \
            --job-name=slurm-up-smoke --wrap true 9>&-) ||
        die "smoke test: sbatch failed" "$DIR/log/slurmctld.log"
    end=$((SECONDS + TIMEOUT))
    while :; do
        jst=$(timeout 10 squeue --states=all -h -j "$jid" -o %T 2>/dev/null || true)
        case "$jst" in
            COMPLETED) break ;;
            FAILED|CANCELLED|TIMEOUT|NODE_FAIL|BOOT_FAIL|OUT_OF_MEMORY|DEADLINE)
                die "smoke test batch job $jid ended $jst" "$DIR/log/slurmd.log" "$DIR/log/slurmctld.log" ;;
        esac
        if [ $SECONDS -ge $end ]; then
            scancel "$jid" 2>/dev/null || true
            die "smoke test batch job $jid not COMPLETED after ${TIMEOUT}s (state: ${jst:-gone})" \
                "$DIR/log/slurmd.log" "$DIR/log/slurmctld.log"
        fi
        sleep 0.2
    done
    log "SLURM up in $((SECONDS - t0))s: cluster dagrun, node $node, partition debug; config $CONF, logs $DIR/log"
}

cmd_stop() {
    need_root
    mkdir -p "$DIR/run"
    exec 9>"$DIR/lock"
    flock -w 300 9 || die "another slurm-up.sh holds $DIR/lock"
    if ! conf_is_ours; then
        log "$CONF is not ours (or absent); no slurm daemons of ours to stop"
    else
        stop_slurm
    fi
    stop_munge
    log "stopped"
}

cmd_status() {
    local rc=0 name pf pid
    echo "config:  $CONF $(conf_is_ours && echo '(ours)' || echo '(not ours or absent)')"
    echo "dir:     $DIR"
    for name in munged slurmctld slurmd; do
        case $name in
            munged) pf=$DIR/run/munged.pid ;;
            slurmctld) pf=$(conf_value SlurmctldPidFile || true) ;;
            slurmd) pf=$(conf_value SlurmdPidFile || true) ;;
        esac
        if pid=$(pid_alive "$pf" "$name"); then echo "$name: running (pid $pid)"
        elif pid=$(pgrep -x "$name" | tr '\n' ' '); [ -n "$pid" ]; then echo "$name: running (pid $pid, not from our pid file)"
        else echo "$name: not running"; fi
    done
    if munge_ok; then echo "munge:   ok"; else echo "munge:   FAILING"; rc=1; fi
    if ctld_up; then
        echo "controller: UP"
        timeout 10 sinfo -N -o '%N %P %T %c %m' || rc=1
        timeout 10 squeue --states=all -o '%i %T %r %j' || true
    else
        echo "controller: DOWN"; rc=1
    fi
    return $rc
}

case "${1:-start}" in
    start|up) cmd_start ;;
    stop|down) cmd_stop ;;
    status) cmd_status ;;
    -h|--help|help) sed -n '2,14p' "$0" ;;
    *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
