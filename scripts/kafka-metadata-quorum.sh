#!/usr/bin/env bash
# kafka-metadata-quorum.sh for sluice: `describe --status | --replication`,
# `add-controller --controller.config FILE` (AddRaftVoter: the node.id in
# that server.properties becomes a voter) and `remove-controller
# --controller-id N` (RemoveRaftVoter), mapped onto `sluice quorum`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sluice-tool.sh"
usage() {
    cat <<'U'
Usage: kafka-metadata-quorum.sh --bootstrap-server HOST:PORT describe (--status | --replication)
       kafka-metadata-quorum.sh --bootstrap-server HOST:PORT --command-config FILE add-controller
       kafka-metadata-quorum.sh --bootstrap-server HOST:PORT add-controller --controller.config FILE
       kafka-metadata-quorum.sh --bootstrap-server HOST:PORT remove-controller --controller-id N [--controller-directory-id ID]
Example: kafka-metadata-quorum.sh --bootstrap-server localhost:9092 describe --status
U
}
bootstrap=localhost:9092; command=""; what=""; config=""; id=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap-server) need_value "$1" $#; bootstrap="$2"; shift 2 ;;
        describe|add-controller|remove-controller) command="$1"; shift ;;
        --status|--replication) [[ -z "$what" ]] || die_usage "only one of --status and --replication"; what="$1"; shift ;;
        --controller.config|--command-config) need_value "$1" $#; config="$2"; shift 2 ;;
        --controller-id) need_value "$1" $#; id="$2"; shift 2 ;;
        # sluice keeps no directory ids; Kafka's tool requires one.
        --controller-directory-id) need_value "$1" $#; shift 2 ;;
        --human-readable) shift ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown option $1" ;;
    esac
done
case "$command" in
    describe)
        [[ -n "$what" ]] || die_usage "describe needs --status or --replication"
        exec "$(sluice_bin)" quorum --bootstrap-server "$bootstrap" "$what" ;;
    add-controller)
        [[ -n "$config" ]] || die_usage "add-controller needs --controller.config (the new controller's server.properties)"
        id="$(sed -n 's/^[[:space:]]*node\.id[[:space:]]*=[[:space:]]*\([0-9][0-9]*\)[[:space:]]*$/\1/p' "$config" | tail -1)"
        [[ -n "$id" ]] || die_usage "$config names no node.id"
        exec "$(sluice_bin)" quorum --bootstrap-server "$bootstrap" --add-controller "$id" ;;
    remove-controller)
        [[ -n "$id" ]] || die_usage "remove-controller needs --controller-id"
        exec "$(sluice_bin)" quorum --bootstrap-server "$bootstrap" --remove-controller "$id" ;;
    *) die_usage "say describe, add-controller or remove-controller" ;;
esac
