# Sourced by demo.sh and run-quickstart.sh: mints the quickstart's four demo tokens into
# $good, $rooted, $expired and $forged. Needs $cli (the attestgate binary) and $1 = lifetime.
example=envoy-examples/quickstart
config=$example/attestgate.yaml
secret=$(sed -n 's/^ *approov_secret: *"\(.*\)"/\1/p' "$config")
forged_secret=$(printf 'not-the-attestation-service-secret' | base64)

mint() { "$cli" mint --secret "$1" --claims "$2" --exp-in "$3"; }
good=$(mint "$secret" $example/claims/good.json "$1")
rooted=$(mint "$secret" $example/claims/rooted.json "$1")
expired=$(mint "$secret" $example/claims/good.json -600)
forged=$(mint "$forged_secret" $example/claims/good.json "$1")
