#!/bin/sh
# Benchmark of a full chatmail-expire dry run against the file-walk floor:
#   find DIR -type f -printf '%T@ %s\n' | wc -l
# (a walk that stats every file), on the same generated tree in the same run, with a warm
# and, where permitted (root, /proc/sys/vm/drop_caches writable), a cold page cache.
#
# usage: expirer/bench/run.sh [MAILBOXES] [MESSAGES] [REPEAT]   (defaults 100000 1000000 3)
# Needs ~2 GB and ~1.5 M inodes under ${BENCH_DIR:-/var/tmp}; the tree is deleted at the end.
set -eu

MAILBOXES=${1:-100000}
MESSAGES=${2:-1000000}
REPEAT=${3:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
WORKSPACE=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$WORKSPACE/target}
BIN=$CARGO_TARGET_DIR/release/chatmail-expire

echo "== building (release)"
(cd "$WORKSPACE" && cargo build --release -q -p chatmail-expire)

SCRATCH=$(mktemp -d "${BENCH_DIR:-/var/tmp}/chatmail-expire-bench.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT INT TERM
TREE=$SCRATCH/mail/bench.example
INI=$SCRATCH/chatmail.ini
printf '[params]\nmail_domain = bench.example\nmailboxes_dir = %s\n' "$TREE" > "$INI"

echo "== generating $MAILBOXES mailboxes, $MESSAGES messages in $SCRATCH"
t0=$(date +%s)
python3 "$HERE/gen.py" "$TREE" "$MAILBOXES" "$MESSAGES" 2>/dev/null
echo "   $(find "$TREE" -type f | wc -l) files, $(du -sh "$SCRATCH" | cut -f1), $(( $(date +%s) - t0 )) s"

# measure LABEL CMD...: prints "wall_seconds max_rss_kb"
measure() {
    out=$SCRATCH/time.out
    /usr/bin/time -f '%e %M' -o "$out" "$@" > "$SCRATCH/cmd.out" 2> "$SCRATCH/cmd.err" || {
        echo "command failed: $*" >&2; cat "$SCRATCH/cmd.err" >&2; exit 1; }
    cat "$out"
}

floor() { sh -c "find '$TREE' -type f -printf '%T@ %s\n' | wc -l"; }
expire() { "$BIN" --config "$INI" "$@"; }

can_drop() {
    [ "$(id -u)" = 0 ] && sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null
}
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# best (lowest wall time) of REPEAT runs; "wall rss"
best() {
    mode=$1; shift
    best_wall=""; best_rss=0
    i=0
    while [ $i -lt "$REPEAT" ]; do
        [ "$mode" = cold ] && drop
        r=$(measure "$@")
        w=${r% *}; m=${r#* }
        if [ -z "$best_wall" ] || [ "$(echo "$w < $best_wall" | bc)" = 1 ]; then best_wall=$w; fi
        [ "$m" -gt "$best_rss" ] && best_rss=$m
        i=$((i + 1))
    done
    echo "$best_wall $best_rss"
}

report() {
    label=$1 f=$2 e=$3
    fw=${f% *}; ew=${e% *}; er=${e#* }
    ratio=$(echo "scale=3; $ew / $fw" | bc)
    printf '%-5s floor (find): %6.2f s   chatmail-expire dry run: %6.2f s   ratio %5.2fx   peak RSS %d MB\n' \
        "$label" "$fw" "$ew" "$ratio" $((er / 1024))
}

echo "== summary line of the dry run"
expire
echo

echo "== warm cache (best of $REPEAT)"
floor > /dev/null; expire > /dev/null   # warm up
F=$(best warm sh -c "find '$TREE' -type f -printf '%T@ %s\n' | wc -l")
E=$(best warm "$BIN" --config "$INI")
E1=$(best warm "$BIN" --config "$INI" --jobs 1)
report warm "$F" "$E"
report "warm, --jobs 1:" "$F" "$E1" | sed 's/^/  /'

if can_drop; then
    echo "== cold cache (drop_caches before each run, best of $REPEAT)"
    F=$(best cold sh -c "find '$TREE' -type f -printf '%T@ %s\n' | wc -l")
    E=$(best cold "$BIN" --config "$INI")
    report cold "$F" "$E"
else
    echo "== cold cache: not measured (cannot write /proc/sys/vm/drop_caches)"
fi
echo "target: ratio <= 1.10, peak RSS <= 64 MB"
