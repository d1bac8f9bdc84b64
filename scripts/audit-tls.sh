#!/usr/bin/env bash
# `make audit`: testssl.sh (Debian's testssl.sh) against `swoop serve --ssl-cert` on a
# loopback port with a fresh CA and an ECDSA P-256 server certificate; fails on any finding
# rated HIGH or CRITICAL (the JSON report's "severity"). Not part of `make test`: it takes
# minutes. Usage: scripts/audit-tls.sh [path/to/swoop]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/swoop}
tmp=$(mktemp -d)
pid=
cleanup() {
    if [[ -n $pid ]]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days 400 \
    -subj /CN=swoop-audit-ca 2>/dev/null
openssl req "${ec[@]}" -keyout "$tmp/key.pem" -out "$tmp/srv.csr" -subj /CN=localhost 2>/dev/null
# A CRL URI and a year of validity: testssl rates a certificate without CRL or OCSP URI, or
# one that expires within 30 days, HIGH (properties of the certificate, not of the server).
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\ncrlDistributionPoints=URI:http://localhost/swoop-audit.crl\n' >"$tmp/san.ext"
openssl x509 -req -in "$tmp/srv.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -out "$tmp/cert.pem" -days 365 -extfile "$tmp/san.ext" 2>/dev/null
mkdir "$tmp/www"
echo "hello from swoop" >"$tmp/www/index.html"

"$bin" serve "$tmp/www" --port 0 --mode process --ssl-cert "$tmp/cert.pem" \
    --ssl-key "$tmp/key.pem" --set http_access_log= >"$tmp/serve.out" 2>&1 &
pid=$!
for _ in $(seq 200); do
    grep -q 'https://' "$tmp/serve.out" && break
    sleep 0.05
done
port=$(grep -o 'https://[^/]*' "$tmp/serve.out" | head -1 | sed 's/.*://')
[[ -n $port ]] || { cat "$tmp/serve.out" >&2; echo "audit: swoop serve did not start" >&2; exit 1; }

echo "== testssl.sh against swoop serve on localhost:$port"
testssl --quiet --color 0 --warnings batch --add-ca "$tmp/ca.pem" --ip 127.0.0.1 \
    --jsonfile "$tmp/report.json" "localhost:$port" || true
bad=$(grep -E '"severity" *: *"(HIGH|CRITICAL)"' "$tmp/report.json" || true)
if [[ -n $bad ]]; then
    echo "audit: findings rated HIGH or CRITICAL:" >&2
    grep -B3 -E '"severity" *: *"(HIGH|CRITICAL)"' "$tmp/report.json" >&2 || true
    exit 1
fi
[[ -s $tmp/report.json ]] || { echo "audit: testssl.sh wrote no report" >&2; exit 1; }
echo "audit: no HIGH or CRITICAL finding"
