#!/usr/bin/env bash
# kafka-console-consumer.sh for sluice: prints a topic's records.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sluice-tool.sh"
usage() {
    cat <<'U'
Usage: kafka-console-consumer.sh --bootstrap-server HOST:PORT --topic NAME [OPTIONS]
Options: --from-beginning  --group ID  --partition N  --offset N|earliest|latest
         --max-messages N  --timeout-ms MS
         --property print.key=true|print.timestamp=true|print.partition=true|
                    print.offset=true|print.headers=true|key.separator=SEP
Example: kafka-console-consumer.sh --bootstrap-server localhost:9092 --topic demo --from-beginning --group readers
U
}
bootstrap=localhost:9092; topic=""; extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap-server) need_value "$1" $#; bootstrap="$2"; shift 2 ;;
        --topic) need_value "$1" $#; topic="$2"; shift 2 ;;
        --from-beginning) extra+=(--from-beginning); shift ;;
        --group) need_value "$1" $#; extra+=(--group "$2"); shift 2 ;;
        --partition) need_value "$1" $#; extra+=(--partition "$2"); shift 2 ;;
        --offset) need_value "$1" $#; extra+=(--offset "$2"); shift 2 ;;
        --max-messages) need_value "$1" $#; extra+=(--max-messages "$2"); shift 2 ;;
        --timeout-ms) need_value "$1" $#; extra+=(--timeout-ms "$2"); shift 2 ;;
        --consumer-property)
            need_value "$1" $#
            case "$2" in group.id=*) extra+=(--group "${2#group.id=}") ;; *) ;; esac
            shift 2 ;;
        --property)
            need_value "$1" $#
            case "$2" in
                print.key=true) extra+=(--print-key) ;;
                print.timestamp=true) extra+=(--print-timestamp) ;;
                print.partition=true) extra+=(--print-partition) ;;
                print.offset=true) extra+=(--print-offset) ;;
                print.headers=true) extra+=(--print-headers) ;;
                print.*=false) ;;
                key.separator=*) extra+=(--key-separator "${2#key.separator=}") ;;
                *) die_usage "unsupported property $2" ;;
            esac
            shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown option $1" ;;
    esac
done
[[ -n "$topic" ]] || die_usage "--topic is required"
exec "$(sluice_bin)" consume --bootstrap-server "$bootstrap" --topic "$topic" "${extra[@]}"
