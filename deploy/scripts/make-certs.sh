#!/usr/bin/env bash
# Certificates for the compose topology, issued by one private site CA, in the layout
# deploy/compose/compose.yaml mounts:
#
#   deploy/scripts/make-certs.sh OUT PUBLIC_HOST MQTT_HOST [GATEWAY_ID ...]
#
#   OUT/ca/ca.crt, ca.key           the site CA (keep ca.key offline once done)
#   OUT/mosquitto/                  ca.crt server.crt server.key   (mosquitto, MQTT_HOST)
#   OUT/kafka-N/  (N = 1, 2, 3)     ca.crt server.pem (key + chain, PEM keystore)   (kafka-N)
#   OUT/timescaledb/                server.crt server.key          (timescaledb)
#   OUT/center/                     server.crt server.key          (PUBLIC_HOST, for Caddy)
#   OUT/clients/                    ca.crt kafka-client.crt/.key   (CN citywatch-stream: the
#                                   bridge's and worker's mutual TLS with Kafka)
#   OUT/gateways/GATEWAY_ID/        ca.crt client.crt client.key   (CN = gateway id: Mosquitto's
#                                   port 8884 takes it as the username the ACL is written for)
#
# Existing files are kept (run it again to add a gateway); delete a file to renew it. Keys are
# mode 0644 in folders under OUT, which is mode 0700: the containers run as their own users
# (mosquitto 1883, kafka 1000, citywatch 10001) and read the folders they mount, while other
# users of the host cannot pass OUT. The CA's key stays 0600 in OUT/ca. Needs openssl.
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 OUT PUBLIC_HOST MQTT_HOST [GATEWAY_ID ...]" >&2
  exit 2
fi
out="$1" public_host="$2" mqtt_host="$3"
shift 3
days_ca=3650 days_leaf=825
command -v openssl >/dev/null 2>&1 || { echo "make-certs.sh: openssl is needed" >&2; exit 1; }
umask 022
mkdir -p "$out"
chmod 0700 "$out"
say() { printf '[certs] %s\n' "$*"; }

ca_dir="$out/ca"
mkdir -p "$ca_dir"
if [ ! -s "$ca_dir/ca.crt" ]; then
  say "site CA in $ca_dir"
  openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days "$days_ca" \
    -subj "/CN=citywatch site CA ($public_host)" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$ca_dir/ca.key" -out "$ca_dir/ca.crt" 2>/dev/null
  chmod 0600 "$ca_dir/ca.key"
fi

# issue DIR NAME CN USAGE SAN...: DIR/NAME.key and DIR/NAME.crt signed by the site CA.
issue() {
  local dir="$1" name="$2" cn="$3" usage="$4"
  shift 4
  mkdir -p "$dir"
  cp "$ca_dir/ca.crt" "$dir/ca.crt"
  [ -s "$dir/$name.crt" ] && return 0
  say "$dir/$name.crt (CN=$cn${*:+, SAN $*})"
  local ext san="" entry
  ext="$(mktemp)"
  for entry in "$@"; do
    if [[ "$entry" =~ ^[0-9.]+$ ]]; then san="${san:+$san,}IP:$entry"; else san="${san:+$san,}DNS:$entry"; fi
  done
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$ext"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$name.key" 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -sha256 -days "$days_leaf" -in "$dir/$name.csr" \
    -CA "$ca_dir/ca.crt" -CAkey "$ca_dir/ca.key" -CAcreateserial \
    -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"
  chmod 0644 "$dir/$name.key"
}

issue "$out/mosquitto" server "$mqtt_host" serverAuth "$mqtt_host" mosquitto
for n in 1 2 3; do
  # Each broker's own certificate serves clients, the other brokers and the controllers;
  # it also authenticates the broker when it is the client of another (mutual TLS).
  issue "$out/kafka-$n" server "kafka-$n" serverAuth,clientAuth "kafka-$n"
  cat "$out/kafka-$n/server.key" "$out/kafka-$n/server.crt" "$ca_dir/ca.crt" >"$out/kafka-$n/server.pem"
done
issue "$out/timescaledb" server timescaledb serverAuth timescaledb
issue "$out/center" server "$public_host" serverAuth "$public_host"
issue "$out/clients" kafka-client citywatch-stream clientAuth
for gateway in "$@"; do
  issue "$out/gateways/$gateway" client "$gateway" clientAuth
done
rm -f "$ca_dir/ca.srl"
find "$out" -mindepth 1 -type d -exec chmod 0755 {} +
chmod 0700 "$out" "$ca_dir"
say "done: $out (CA $ca_dir/ca.crt)"
