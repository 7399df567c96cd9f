#!/usr/bin/env bash
# kafka-leader-election.sh for sluice: Kafka's flags mapped onto
# `sluice elect-leaders` (ElectLeaders).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sluice-tool.sh"
usage() {
    cat <<'U'
Usage: kafka-leader-election.sh --bootstrap-server HOST:PORT --election-type PREFERRED|UNCLEAN
                                (--all-topic-partitions | --topic T [--partition P])
Example: kafka-leader-election.sh --bootstrap-server localhost:9092 --election-type PREFERRED --all-topic-partitions
U
}
bootstrap=localhost:9092; args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap-server) need_value "$1" $#; bootstrap="$2"; shift 2 ;;
        --election-type) need_value "$1" $#; args+=(--election-type "${2,,}"); shift 2 ;;
        --topic) need_value "$1" $#; args+=(--topic "$2"); shift 2 ;;
        --partition) need_value "$1" $#; args+=(--partition "$2"); shift 2 ;;
        --all-topic-partitions) args+=(--all-topic-partitions); shift ;;
        --path-to-json-file) die_usage "--path-to-json-file is not supported; use --topic/--partition" ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown option $1" ;;
    esac
done
exec "$(sluice_bin)" elect-leaders --bootstrap-server "$bootstrap" "${args[@]}"
