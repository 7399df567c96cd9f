#!/usr/bin/env bash
# kafka-reassign-partitions.sh for sluice: Kafka's flags mapped onto
# `sluice reassign` (AlterPartitionReassignments, ListPartitionReassignments).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sluice-tool.sh"
usage() {
    cat <<'U'
Usage: kafka-reassign-partitions.sh --bootstrap-server HOST:PORT --reassignment-json-file FILE
                                    (--execute [--throttle BYTES_PER_S] | --verify | --cancel)
FILE is Kafka's: {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2,3]}]}
Example: kafka-reassign-partitions.sh --bootstrap-server localhost:9092 --reassignment-json-file move.json --execute
U
}
bootstrap=localhost:9092; args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap-server) need_value "$1" $#; bootstrap="$2"; shift 2 ;;
        --reassignment-json-file) need_value "$1" $#; args+=(--reassignment-json-file "$2"); shift 2 ;;
        --execute|--verify|--cancel) args+=("$1"); shift ;;
        --generate|--topics-to-move-json-file|--broker-list)
            die_usage "$1 is not supported: write the JSON by hand (see --help)" ;;
        --throttle) need_value "$1" $#; args+=(--throttle "$2"); shift 2 ;;
        --replica-alter-log-dirs-throttle)
            die_usage "$1 is not supported: sluice has one log directory per broker" ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown option $1" ;;
    esac
done
exec "$(sluice_bin)" reassign --bootstrap-server "$bootstrap" "${args[@]}"
