#!/usr/bin/env bash
# Fails when an #include points upward in the layering of DESIGN.md section 6:
# a module may include its own layer and the layers below it, never above.
# Layer ranks: base 0; proto, shm, event 1 (siblings: none includes another);
# co 2 (coroutines, on the event layer); net 2; ipc 3; proc 4; server 5; http 6; ws 7. cli sits on top of all.
# task is the server's room for task workers: layer 5 with server, the one
# pair of siblings that include each other (the server calls task/task.h,
# the task modules use server/internal.h).
set -euo pipefail
cd "$(dirname "$0")/../.."

# Sets r to the rank of module $1 (no subshell: this runs once per include line).
rank() {
    case "$1" in
    base) r=0 ;;
    proto | shm | event) r=1 ;;
    net | co) r=2 ;;
    ipc) r=3 ;;
    proc) r=4 ;;
    server | task) r=5 ;;
    http) r=6 ;;
    ws) r=7 ;;
    cli) r=99 ;;
    *) r=-1 ;;
    esac
}

bad=0
re='^#include "([a-z]+)/'
while IFS= read -r -d '' file; do
    from=${file#src/}
    from=${from%%/*}
    rank "$from"
    from_rank=$r
    while IFS= read -r inc; do
        [[ "$inc" =~ $re ]] || continue
        to=${BASH_REMATCH[1]}
        rank "$to"
        to_rank=$r
        if [[ $to_rank -lt 0 ]]; then
            echo "check_layers: $file includes unknown module: $inc" >&2
            bad=1
        elif [[ "$from" != "$to" && $to_rank -ge $from_rank && $from_rank -ne 99 &&
            "$from$to" != "servertask" && "$from$to" != "taskserver" ]]; then
            echo "check_layers: $file ($from, layer $from_rank) includes $to (layer $to_rank): $inc" >&2
            bad=1
        fi
    done < <(grep -E '^#include "[a-z]+/' "$file" || true)
done < <(find src -name '*.[ch]' -print0)

# Public headers include only libc/POSIX headers and swoop/*.h.
while IFS= read -r -d '' file; do
    if grep -nE '^#include "' "$file" >/dev/null; then
        echo "check_layers: public header $file includes a private header" >&2
        bad=1
    fi
done < <(find include -name '*.h' -print0)

if [[ $bad -ne 0 ]]; then
    exit 1
fi
echo "check_layers: ok"
