#!/usr/bin/env bash
# Certificates for a grading cluster (README, "Grading on a cluster"): a private CA, and one
# certificate signed by it that the scheduler, every worker and the grading client present.
# Dask checks each peer's certificate against the CA (mutual TLS), so only holders of
# node.key can join the cluster or send it work. Keep ca.key offline; copy ca.pem,
# node.pem and node.key (readable by the grading user only) to every host.
#
#   scripts/grading-certs.sh FOLDER [DAYS]
set -euo pipefail
out=${1:?usage: $0 FOLDER [DAYS]}
days=${2:-365}
mkdir -p "$out"
umask 077
cd "$out"
for f in ca.pem ca.key node.pem node.key; do
  if [ -e "$f" ]; then echo "$out/$f exists: not overwriting a certificate" >&2; exit 1; fi
done
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -days "$days" -subj "/CN=d2l grading CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
openssl req "${ec[@]}" -subj "/CN=d2l grading" -keyout node.key -out node.csr 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth\n' > node.ext
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
  -extfile node.ext -out node.pem 2>/dev/null
rm -f node.csr node.ext ca.srl
chmod 644 ca.pem node.pem
echo "wrote $out: ca.pem (the CA; keep ca.key offline), node.pem and node.key (every host)"
