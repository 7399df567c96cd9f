# Shared by the kafka-*.sh wrappers: finds the sluice binary and reports
# flag errors on one line. Sourced, not run.
sluice_bin() {
    if [[ -n "${SLUICE_BIN:-}" ]]; then echo "$SLUICE_BIN"; return; fi
    local here; here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    if [[ -x "$here/../target/release/sluice" ]]; then echo "$here/../target/release/sluice"; return; fi
    if command -v sluice >/dev/null 2>&1; then command -v sluice; return; fi
    echo "$(basename "$0"): cannot find the sluice binary (build it with cargo build --release, or set SLUICE_BIN)" >&2
    exit 1
}
die_usage() {
    echo "$(basename "$0"): $1 (see --help)" >&2
    exit 1
}
need_value() { # $1 flag, $2 number of args left
    [[ "$2" -ge 2 ]] || die_usage "$1 needs a value"
}
