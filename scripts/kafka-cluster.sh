#!/usr/bin/env bash
# kafka-cluster.sh for sluice: `cluster-id` and `unregister --id N`, mapped
# onto `sluice cluster`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sluice-tool.sh"
usage() {
    cat <<'U'
Usage: kafka-cluster.sh cluster-id --bootstrap-server HOST:PORT
       kafka-cluster.sh unregister --bootstrap-server HOST:PORT --id BROKER_ID
Example: kafka-cluster.sh unregister --bootstrap-server localhost:9092 --id 4
U
}
[[ $# -ge 1 ]] || { usage; exit 1; }
command="$1"; shift
bootstrap=localhost:9092; id=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap-server) need_value "$1" $#; bootstrap="$2"; shift 2 ;;
        --id) need_value "$1" $#; id="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown option $1" ;;
    esac
done
case "$command" in
    cluster-id)
        out="$("$(sluice_bin)" cluster --bootstrap-server "$bootstrap")"
        echo "Cluster ID: $(sed -n 's/^Cluster id: //p' <<<"$out")" ;;
    unregister)
        [[ -n "$id" ]] || die_usage "unregister needs --id"
        exec "$(sluice_bin)" cluster --bootstrap-server "$bootstrap" --unregister "$id" ;;
    -h|--help) usage ;;
    *) die_usage "unknown command $command (cluster-id or unregister)" ;;
esac
