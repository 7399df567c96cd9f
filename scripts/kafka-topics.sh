#!/usr/bin/env bash
# kafka-topics.sh for sluice: Kafka's common flags, mapped onto `sluice topics`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sluice-tool.sh"
usage() {
    cat <<'U'
Usage: kafka-topics.sh --bootstrap-server HOST:PORT ACTION [OPTIONS]
Actions: --create | --list | --describe | --delete | --alter
Options: --topic NAME  --partitions N  --replication-factor N
         --config KEY=VALUE (repeatable)  --if-not-exists
         --under-replicated-partitions (with --describe)
Example: kafka-topics.sh --bootstrap-server localhost:9092 --create --topic orders --partitions 3
U
}
bootstrap=localhost:9092; action=""; topics=(); extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap-server) need_value "$1" $#; bootstrap="$2"; shift 2 ;;
        --create|--list|--describe|--delete|--alter) [[ -z "$action" ]] || die_usage "only one action"; action="${1#--}"; shift ;;
        --topic) need_value "$1" $#; topics+=("$2"); shift 2 ;;
        --partitions) need_value "$1" $#; extra+=(--partitions "$2"); shift 2 ;;
        --replication-factor) need_value "$1" $#; extra+=(--replication-factor "$2"); shift 2 ;;
        --config) need_value "$1" $#; extra+=(--config "$2"); shift 2 ;;
        --if-not-exists) extra+=(--if-not-exists); shift ;;
        --under-replicated-partitions) extra+=(--under-replicated-partitions); shift ;;
        --exclude-internal|--if-exists) shift ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown option $1" ;;
    esac
done
[[ -n "$action" ]] || die_usage "say what to do: --create, --list, --describe, --delete or --alter"
sluice="$(sluice_bin)"
case "$action" in
    create|alter)
        [[ ${#topics[@]} -eq 1 ]] || die_usage "--$action needs one --topic"
        exec "$sluice" topics --bootstrap-server "$bootstrap" "$action" "${topics[0]}" "${extra[@]}" ;;
    list) exec "$sluice" topics --bootstrap-server "$bootstrap" list ;;
    describe) exec "$sluice" topics --bootstrap-server "$bootstrap" describe "${topics[@]}" "${extra[@]}" ;;
    delete)
        [[ ${#topics[@]} -ge 1 ]] || die_usage "--delete needs --topic"
        exec "$sluice" topics --bootstrap-server "$bootstrap" delete "${topics[@]}" ;;
esac
