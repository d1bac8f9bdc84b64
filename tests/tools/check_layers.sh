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

rank() {
    case "$1" in
    base) echo 0 ;;
    proto | shm | event) echo 1 ;;
    net | co) echo 2 ;;
    ipc) echo 3 ;;
    proc) echo 4 ;;
    server | task) echo 5 ;;
    http) echo 6 ;;
    ws) echo 7 ;;
    cli) echo 99 ;;
    *) echo -1 ;;
    esac
}

bad=0
while IFS= read -r -d '' file; do
    from=$(echo "$file" | cut -d/ -f2)
    from_rank=$(rank "$from")
    while IFS= read -r inc; do
        to=$(echo "$inc" | sed -E 's/^#include "([a-z]+)\/.*/\1/')
        [[ "$to" == "$inc" ]] && continue
        to_rank=$(rank "$to")
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
