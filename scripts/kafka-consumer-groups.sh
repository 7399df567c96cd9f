#!/usr/bin/env bash
# kafka-consumer-groups.sh for sluice: list, describe (lag), delete, reset offsets.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sluice-tool.sh"
usage() {
    cat <<'U'
Usage: kafka-consumer-groups.sh --bootstrap-server HOST:PORT ACTION [OPTIONS]
Actions: --list | --describe --group ID | --delete --group ID [--group ID ...]
         --reset-offsets --group ID (--topic NAME | --all-topics)
             (--to-earliest | --to-latest | --to-offset N | --to-datetime YYYY-MM-DDTHH:MM:SS.sss | --shift-by N)
             [--dry-run | --execute]   (a dry run by default, as in Kafka)
Example: kafka-consumer-groups.sh --bootstrap-server localhost:9092 --describe --group readers
U
}
bootstrap=localhost:9092; action=""; groups=(); extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap-server) need_value "$1" $#; bootstrap="$2"; shift 2 ;;
        --list|--describe|--delete|--reset-offsets) [[ -z "$action" ]] || die_usage "only one action"; action="${1#--}"; shift ;;
        --group) need_value "$1" $#; groups+=("$2"); shift 2 ;;
        --topic) need_value "$1" $#; extra+=(--topic "${2%%:*}"); shift 2 ;;
        --all-topics|--to-earliest|--to-latest|--execute|--dry-run) extra+=("$1"); shift ;;
        --to-offset|--to-datetime|--shift-by) need_value "$1" $#; extra+=("$1" "$2"); shift 2 ;;
        --members|--offsets|--state|--verbose) shift ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown option $1" ;;
    esac
done
[[ -n "$action" ]] || die_usage "say what to do: --list, --describe, --delete or --reset-offsets"
sluice="$(sluice_bin)"
case "$action" in
    list) exec "$sluice" groups --bootstrap-server "$bootstrap" list ;;
    describe)
        [[ ${#groups[@]} -eq 1 ]] || die_usage "--describe needs one --group"
        exec "$sluice" groups --bootstrap-server "$bootstrap" describe "${groups[0]}" ;;
    delete)
        [[ ${#groups[@]} -ge 1 ]] || die_usage "--delete needs --group"
        exec "$sluice" groups --bootstrap-server "$bootstrap" delete "${groups[@]}" ;;
    reset-offsets)
        [[ ${#groups[@]} -eq 1 ]] || die_usage "--reset-offsets needs one --group"
        exec "$sluice" groups --bootstrap-server "$bootstrap" reset-offsets "${groups[0]}" "${extra[@]}" ;;
esac
