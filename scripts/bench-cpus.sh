# Sourced by the one-shard benchmarks (bench-append.sh, bench-ab.sh): where
# the broker and the load generator run.
#
# A shard owns its core (thread-per-core); in production its clients are
# other machines. On one machine the load generator's threads otherwise
# share the shard's core, and the scheduler preempts the shard's reactor
# for them: on the 2-core development VM that alone cost a quarter of the
# 4-partition append throughput (docs/BENCHMARKS.md, eleventh session). So
# the broker runs on the first CPU this script may use (its one shard is
# pinned there) and the load generator on the others. With one CPU, or with
# CLIENT_CPUS=shared (how the figures before that session were taken),
# nothing is pinned.
# Sets BROKER_ON and CLIENT_ON: command prefixes (arrays, possibly empty).
# shellcheck shell=bash
mapfile -t _cpus < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)), sep="\n")')
BROKER_ON=()
CLIENT_ON=()
if [[ ${CLIENT_CPUS:-own} != shared ]] && ((${#_cpus[@]} > 1)); then
    BROKER_ON=(taskset -c "${_cpus[0]}")
    CLIENT_ON=(taskset -c "$(IFS=,; echo "${_cpus[*]:1}")")
fi
unset _cpus
