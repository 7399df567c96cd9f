#!/usr/bin/env bash
# kafka-configs.sh for sluice: Kafka's common flags, mapped onto `sluice configs`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sluice-tool.sh"
usage() {
    cat <<'U'
Usage: kafka-configs.sh --bootstrap-server HOST:PORT --entity-type topics|brokers|groups
                        (--entity-name NAME | --entity-default) ACTION [OPTIONS]
Actions: --describe [--all] | --alter
Alter:   --add-config K=V[,K=V,K=[A,B]]  --delete-config K[,K]
         --append-config K=V[,...]  --subtract-config K=V[,...]
Shortcuts: --topic NAME, --broker ID, --broker-defaults
Example: kafka-configs.sh --bootstrap-server localhost:9092 --entity-type brokers --entity-default \
             --alter --add-config log.retention.ms=3600000
U
}
bootstrap=localhost:9092; action=""; entity=(); extra=(); all=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap-server) need_value "$1" $#; bootstrap="$2"; shift 2 ;;
        --describe|--alter) [[ -z "$action" ]] || die_usage "only one action"; action="${1#--}"; shift ;;
        --entity-type) need_value "$1" $#; entity+=(--entity-type "$2"); shift 2 ;;
        --entity-name) need_value "$1" $#; entity+=(--entity-name "$2"); shift 2 ;;
        --entity-default) entity+=(--entity-default); shift ;;
        --topic) need_value "$1" $#; entity+=(--entity-type topics --entity-name "$2"); shift 2 ;;
        --broker) need_value "$1" $#; entity+=(--entity-type brokers --entity-name "$2"); shift 2 ;;
        --broker-defaults) entity+=(--entity-type brokers --entity-default); shift ;;
        --add-config|--delete-config|--append-config|--subtract-config)
            need_value "$1" $#; extra+=("$1" "$2"); shift 2 ;;
        --all) all+=(--all); shift ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown option $1" ;;
    esac
done
[[ -n "$action" ]] || die_usage "say what to do: --describe or --alter"
sluice="$(sluice_bin)"
case "$action" in
    describe) exec "$sluice" configs --bootstrap-server "$bootstrap" describe "${entity[@]}" "${all[@]}" ;;
    alter) exec "$sluice" configs --bootstrap-server "$bootstrap" alter "${entity[@]}" "${extra[@]}" ;;
esac
