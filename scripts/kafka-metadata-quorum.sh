#!/usr/bin/env bash
# kafka-metadata-quorum.sh for sluice: `describe --status | --replication`,
# mapped onto `sluice quorum`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sluice-tool.sh"
usage() {
    cat <<'U'
Usage: kafka-metadata-quorum.sh --bootstrap-server HOST:PORT describe (--status | --replication)
Example: kafka-metadata-quorum.sh --bootstrap-server localhost:9092 describe --status
U
}
bootstrap=localhost:9092; command=""; what=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap-server) need_value "$1" $#; bootstrap="$2"; shift 2 ;;
        describe) command=describe; shift ;;
        --status|--replication) [[ -z "$what" ]] || die_usage "only one of --status and --replication"; what="$1"; shift ;;
        --human-readable) shift ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown option $1" ;;
    esac
done
[[ "$command" == describe ]] || die_usage "say describe"
[[ -n "$what" ]] || die_usage "describe needs --status or --replication"
exec "$(sluice_bin)" quorum --bootstrap-server "$bootstrap" "$what"
