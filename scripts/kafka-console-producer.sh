#!/usr/bin/env bash
# kafka-console-producer.sh for sluice: lines from stdin to a topic.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sluice-tool.sh"
usage() {
    cat <<'U'
Usage: kafka-console-producer.sh --bootstrap-server HOST:PORT --topic NAME [OPTIONS]
Options: --property parse.key=true  --property key.separator=SEP
         --producer-property acks=all|1|0  --request-required-acks N
         --compression-codec gzip|snappy|lz4|zstd
Example: echo 'k1:hello' | kafka-console-producer.sh --bootstrap-server localhost:9092 --topic demo \
             --property parse.key=true --property key.separator=:
U
}
bootstrap=localhost:9092; topic=""; parse_key=false; sep=$'\t'; extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap-server|--broker-list) need_value "$1" $#; bootstrap="$2"; shift 2 ;;
        --topic) need_value "$1" $#; topic="$2"; shift 2 ;;
        --property)
            need_value "$1" $#
            case "$2" in
                parse.key=*) parse_key="${2#parse.key=}" ;;
                key.separator=*) sep="${2#key.separator=}" ;;
                *) die_usage "unsupported property $2" ;;
            esac
            shift 2 ;;
        --producer-property)
            need_value "$1" $#
            case "$2" in
                acks=*) extra+=(--acks "${2#acks=}") ;;
                compression.type=*) extra+=(--compression "${2#compression.type=}") ;;
                *) ;;
            esac
            shift 2 ;;
        --request-required-acks) need_value "$1" $#; extra+=(--acks "$2"); shift 2 ;;
        --compression-codec) need_value "$1" $#; extra+=(--compression "$2"); shift 2 ;;
        --sync) shift ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown option $1" ;;
    esac
done
[[ -n "$topic" ]] || die_usage "--topic is required"
[[ "$parse_key" == true ]] && extra+=(--key-separator "$sep")
exec "$(sluice_bin)" produce --bootstrap-server "$bootstrap" --topic "$topic" "${extra[@]}"
