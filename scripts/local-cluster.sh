#!/usr/bin/env bash
# Starts (or stops) a cluster of sluice brokers on this machine: each a
# broker and a voter of the metadata quorum, with its own data dir, client
# ports and controller port, configured with Kafka's KRaft keys in a
# server.properties of its own (written under DIR, kept for reading).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sluice-tool.sh"
usage() {
    cat <<'U'
Usage: local-cluster.sh start [--brokers N] [--shards N] [--dir DIR] [--port P] [--controller-port C]
                             [--set KEY=VALUE]...
       local-cluster.sh stop [--dir DIR]
Broker i (1..N) serves clients on P + 10*(i-1) (its shard k on that + k),
its controller on C + i - 1; data, config and log under DIR/node-i.
--set adds a line to every broker's server.properties (repeatable).
Defaults: 3 brokers of 1 shard, DIR ./sluice-cluster, P 9092, C 9192.
Example: local-cluster.sh start && kafka-topics.sh --bootstrap-server localhost:9092 \
         --create --topic t --partitions 12 --replication-factor 3
U
}
[[ $# -ge 1 ]] || { usage; exit 1; }
action="$1"; shift
brokers=3; shards=1; dir=./sluice-cluster; port=9092; cport=9192; extra=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --brokers) need_value "$1" $#; brokers="$2"; shift 2 ;;
        --shards) need_value "$1" $#; shards="$2"; shift 2 ;;
        --dir) need_value "$1" $#; dir="$2"; shift 2 ;;
        --port) need_value "$1" $#; port="$2"; shift 2 ;;
        --controller-port) need_value "$1" $#; cport="$2"; shift 2 ;;
        --set) need_value "$1" $#; [[ "$2" == *=* ]] || die_usage "--set takes KEY=VALUE"
               extra+="$2"$'\n'; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown option $1" ;;
    esac
done
[[ "$brokers" =~ ^[1-9][0-9]?$ ]] || die_usage "--brokers takes 1..99"
[[ "$shards" =~ ^[1-9]$ ]] || die_usage "--shards takes 1..9 (ports are 10 apart)"

stop() {
    local pid
    for f in "$dir"/node-*/broker.pid; do
        [[ -f "$f" ]] || continue
        pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
        rm -f "$f"
    done
}

case "$action" in
    stop) stop; exit 0 ;;
    start) ;;
    *) die_usage "say start or stop" ;;
esac

bin="$(sluice_bin)"
voters=""
for ((i = 1; i <= brokers; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:$((cport + i - 1))"
done
for ((i = 1; i <= brokers; i++)); do
    node="$dir/node-$i"
    mkdir -p "$node"
    if [[ -f "$node/broker.pid" ]] && kill -0 "$(cat "$node/broker.pid")" 2>/dev/null; then
        echo "local-cluster.sh: broker $i already runs (pid $(cat "$node/broker.pid"))" >&2
        exit 1
    fi
    cat > "$node/server.properties" <<P
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$((port + 10 * (i - 1))),CONTROLLER://127.0.0.1:$((cport + i - 1))
controller.listener.names=CONTROLLER
log.dirs=$node/data
P
    printf '%s' "$extra" >> "$node/server.properties"
    "$bin" broker --config "$node/server.properties" --shards "$shards" >>"$node/broker.log" 2>&1 &
    echo $! > "$node/broker.pid"
done
# Each broker is ready once a majority of voters elected a leader and it
# registered: its client port then accepts connections.
for ((i = 1; i <= brokers; i++)); do
    p=$((port + 10 * (i - 1)))
    for ((t = 0; t < 600; t++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then break; fi
        if ! kill -0 "$(cat "$dir/node-$i/broker.pid")" 2>/dev/null; then
            echo "local-cluster.sh: broker $i exited; see $dir/node-$i/broker.log" >&2
            tail -n 5 "$dir/node-$i/broker.log" >&2
            stop
            exit 1
        fi
        sleep 0.1
    done
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "local-cluster.sh: broker $i not ready after 60 s" >&2; stop; exit 1; }
done
bootstrap=""
for ((i = 1; i <= brokers; i++)); do bootstrap+="${bootstrap:+,}127.0.0.1:$((port + 10 * (i - 1)))"; done
echo "sluice cluster of $brokers brokers up; bootstrap servers: $bootstrap"
echo "stop it with: $0 stop --dir $dir"
