#!/usr/bin/env bash
# Installs the Debian packages a make target needs, and only those that are missing.
# Usage: scripts/install-deps.sh build|test|bench ...  (several profiles may be given)
# Idempotent and silent when everything is present; needs root (or sudo) only when
# something is missing.
set -euo pipefail

pkgs_build=(cmake ninja-build make gcc libc6-dev pkgconf zlib1g-dev libssl-dev liburing-dev)
pkgs_test=(g++ clang clang-format libclang-rt-14-dev libasan8 libubsan1 libtsan2 util-linux procps python3 curl media-types python3-websockets python3-autobahn node-ws prometheus python3-prometheus-client)
pkgs_bench=(libuv1-dev wrk nginx-light libboost-context-dev openssl)

want=()
for profile in "$@"; do
    case "$profile" in
    build) want+=("${pkgs_build[@]}") ;;
    test) want+=("${pkgs_build[@]}" "${pkgs_test[@]}") ;;
    bench) want+=("${pkgs_build[@]}" "${pkgs_bench[@]}") ;;
    *)
        echo "install-deps: unknown profile '$profile' (build, test, bench)" >&2
        exit 2
        ;;
    esac
done

missing=()
for p in "${want[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        case " ${missing[*]-} " in *" $p "*) ;; *) missing+=("$p") ;; esac
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing missing packages: ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then
        sudo=(sudo)
    else
        echo "install-deps: not root and no sudo; run: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists; update once, then install.
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
