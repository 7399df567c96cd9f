# Sourced by the one-shard benchmarks (bench-append.sh, bench-ab.sh): where
# the broker and the load generator run.
#
# A shard owns its core (thread-per-core); in production its clients are
# other machines. On one machine the load generator's threads otherwise
# share the shard's core, and the scheduler preempts the shard's reactor
# for them: on the 2-core development VM its thread then waited for the CPU
# 28-30% of the time instead of 8-10%, and moving the load generator off
# raised the 4-partition append throughput by a fifth (docs/BENCHMARKS.md,
# eleventh session). So the whole broker runs on the first CPU this script
# may use (its one shard is pinned there; more shards would share it) and
# the load generator on the others. With one CPU, or with
# CLIENT_CPUS=shared (how the figures before that session were taken),
# nothing is pinned. The placement is printed to stderr.
# Sets BROKER_ON and CLIENT_ON: command prefixes (arrays, possibly empty).
# shellcheck shell=bash
mapfile -t _cpus < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)), sep="\n")')
((${#_cpus[@]})) || { echo "bench-cpus.sh: cannot read the CPUs this process may use (python3?)" >&2; exit 1; }
case ${CLIENT_CPUS:-own} in
own | shared) ;;
*) echo "bench-cpus.sh: CLIENT_CPUS is 'own' (the default) or 'shared', not '$CLIENT_CPUS'" >&2; exit 1 ;;
esac
BROKER_ON=()
CLIENT_ON=()
if [[ ${CLIENT_CPUS:-own} == own ]] && ((${#_cpus[@]} > 1)); then
    BROKER_ON=(taskset -c "${_cpus[0]}")
    CLIENT_ON=(taskset -c "$(IFS=,; echo "${_cpus[*]:1}")")
    echo "placement: broker on CPU ${_cpus[0]}, load generator on CPUs ${CLIENT_ON[2]}" >&2
else
    echo "placement: broker and load generator share CPUs $(IFS=,; echo "${_cpus[*]}")" >&2
fi
unset _cpus
